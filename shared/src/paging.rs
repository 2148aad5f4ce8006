//! Pages of a list, one policy: a route declares its page size ([`Limit`]: a default and a
//! maximum) and whether a `limit` out of range is clamped into it or refused with 400
//! `invalid_limit` (each route keeps the contract its API description gives; new routes refuse);
//! a keyset page is fetched with one row more than asked, and that row says whether there is a
//! next page ([`next_after`]).

use crate::problem::ApiError;

/// A route's page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub default: u32,
    pub max: u32,
}

/// A `limit` outside 1 to the route's maximum, where the route refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be 1 to {max}")]
pub struct OutOfRange {
    pub max: u32,
}

impl From<OutOfRange> for ApiError {
    fn from(err: OutOfRange) -> Self {
        ApiError::bad_request("invalid_limit", err.to_string())
    }
}

impl Limit {
    pub const fn new(default: u32, max: u32) -> Self {
        Self { default, max }
    }

    /// The page size asked for (the default when none was), brought into 1 to the maximum.
    pub fn clamp(self, asked: Option<u32>) -> i64 {
        i64::from(asked.unwrap_or(self.default).clamp(1, self.max))
    }

    /// The page size asked for (the default when none was), or [`OutOfRange`].
    pub fn check(self, asked: Option<i64>) -> Result<i64, OutOfRange> {
        let limit = asked.unwrap_or(i64::from(self.default));
        match (1..=i64::from(self.max)).contains(&limit) {
            true => Ok(limit),
            false => Err(OutOfRange { max: self.max }),
        }
    }
}

/// For `items` fetched with `limit + 1` rows: keeps the first `limit` and returns the cursor of
/// the last one kept (`key` of it) when there was more, `None` on the last page.
pub fn next_after<T, C>(items: &mut Vec<T>, limit: i64, key: impl FnOnce(&T) -> C) -> Option<C> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if items.len() <= limit {
        return None;
    }
    items.truncate(limit);
    items.last().map(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_clamped_or_refused_as_the_route_says() {
        let page = Limit::new(50, 100);
        assert_eq!(page.clamp(None), 50);
        assert_eq!(page.clamp(Some(0)), 1);
        assert_eq!(page.clamp(Some(1000)), 100);
        assert_eq!(page.check(None), Ok(50));
        assert_eq!(page.check(Some(100)), Ok(100));
        for bad in [0, -1, 101] {
            assert_eq!(page.check(Some(bad)), Err(OutOfRange { max: 100 }));
        }
        let answer = ApiError::from(OutOfRange { max: 100 });
        assert_eq!(
            (answer.status.as_u16(), answer.code),
            (400, "invalid_limit")
        );
        assert_eq!(answer.detail.as_deref(), Some("limit must be 1 to 100"));
    }

    #[test]
    fn the_extra_row_says_whether_there_is_a_next_page() {
        let mut items = vec![1, 2, 3];
        assert_eq!(next_after(&mut items, 2, |i| *i), Some(2));
        assert_eq!(items, [1, 2]);
        let mut last = vec![1, 2];
        assert_eq!(next_after(&mut last, 2, |i| *i), None);
        assert_eq!(last, [1, 2]);
    }
}
