//! Per-key limits: a job's `limit` (`{"key", "concurrency", "per_second"}`), checked, and the
//! two rules that admit its key's jobs: how many may start now (concurrency) and when each may
//! start (a steady pace of `per_second`, one start every `1 / per_second` seconds). Pure: no
//! I/O.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::TaskError;

/// Most jobs of one key running at once that a limit may allow.
pub const MAX_CONCURRENCY: i32 = 10_000;
/// Most starts a second that a limit may allow.
pub const MAX_PER_SECOND: f64 = 10_000.0;
/// Fewest: one a day.
pub const MIN_PER_SECOND: f64 = 1.0 / 86_400.0;

/// A job's `limit`: the jobs of one owner that share `key` never run more than `concurrency`
/// at once nor start more than `per_second` a second (either or both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// 1 to 200 characters; scoped to the job's owner (two users' `customer-42` are two keys).
    pub key: String,
    /// Most of the key's jobs started and not yet ended (retries waiting included), 1 to 10000.
    pub concurrency: Option<i32>,
    /// Most starts a second, evenly spaced (0.5 is one every 2 s), from 1/86400 (one a day) to
    /// 10000.
    pub per_second: Option<f64>,
}

fn invalid(detail: &str) -> TaskError {
    TaskError::invalid("invalid_job", format!("limit: {detail}"))
}

/// `limit` checked: a trimmed key, at least one of the two bounds, each within its range.
pub fn parse(limit: &Limit) -> Result<Limit, TaskError> {
    let key = limit.key.trim();
    if key.is_empty() || key.chars().count() > 200 || key.chars().any(char::is_control) {
        return Err(invalid(
            "key must be 1 to 200 characters, none a control character",
        ));
    }
    if limit.concurrency.is_none() && limit.per_second.is_none() {
        return Err(invalid("give concurrency, per_second or both"));
    }
    if limit
        .concurrency
        .is_some_and(|c| !(1..=MAX_CONCURRENCY).contains(&c))
    {
        return Err(invalid("concurrency must be 1 to 10000"));
    }
    if limit
        .per_second
        .is_some_and(|r| !(r.is_finite() && (MIN_PER_SECOND..=MAX_PER_SECOND).contains(&r)))
    {
        return Err(invalid(
            "per_second must be at least 1/86400 (one a day) and at most 10000",
        ));
    }
    Ok(Limit {
        key: key.to_string(),
        ..limit.clone()
    })
}

/// How many waiting jobs may start now: the places `concurrency` leaves beside the `in_flight`
/// ones (no bound without it), at most `waiting`.
pub fn free_places(concurrency: Option<i32>, in_flight: i64, waiting: usize) -> usize {
    match concurrency {
        None => waiting,
        Some(max) => (i64::from(max) - in_flight).clamp(0, waiting as i64) as usize,
    }
}

/// The starts of `n` jobs admitted at `now` when the key's next start is free from `next`:
/// `None` for at once, else the time each may start; and the key's next free start after
/// them. Without `per_second` every job starts at once.
pub fn pace(
    per_second: Option<f64>,
    next: DateTime<Utc>,
    now: DateTime<Utc>,
    n: usize,
) -> (Vec<Option<DateTime<Utc>>>, DateTime<Utc>) {
    let Some(rate) = per_second else {
        return (vec![None; n], next);
    };
    let rate = rate.clamp(MIN_PER_SECOND, MAX_PER_SECOND);
    let gap = Duration::microseconds((1_000_000.0 / rate).round() as i64);
    let mut at = next.max(now);
    let mut starts = Vec::with_capacity(n);
    for _ in 0..n {
        starts.push((at > now).then_some(at));
        at += gap;
    }
    (starts, at)
}

/// One key as `GET /api/v1/limits` shows it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeySummary {
    pub key: String,
    pub concurrency: Option<i32>,
    pub per_second: Option<f64>,
    /// Admitted and not yet ended.
    pub in_flight: i64,
    /// Over the limit, not yet dispatched.
    pub waiting: i64,
    pub waiting_since: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(concurrency: Option<i32>, per_second: Option<f64>) -> Limit {
        Limit {
            key: " customer-42 ".into(),
            concurrency,
            per_second,
        }
    }

    #[test]
    fn a_limit_is_checked() {
        assert_eq!(parse(&limit(Some(2), None)).unwrap().key, "customer-42");
        assert!(parse(&limit(None, Some(0.5))).is_ok());
        for bad in [
            limit(None, None),
            limit(Some(0), None),
            limit(Some(10_001), None),
            limit(None, Some(0.0)),
            limit(None, Some(1e-12)),
            limit(None, Some(f64::NAN)),
            limit(None, Some(20_000.0)),
            Limit {
                key: "  ".into(),
                concurrency: Some(1),
                per_second: None,
            },
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn free_places_never_pass_the_concurrency() {
        assert_eq!(free_places(Some(2), 0, 10), 2);
        assert_eq!(free_places(Some(2), 1, 10), 1);
        assert_eq!(free_places(Some(2), 3, 10), 0);
        assert_eq!(free_places(Some(5), 0, 3), 3);
        assert_eq!(free_places(None, 100, 7), 7);
    }

    #[test]
    fn starts_are_evenly_paced_from_the_next_free_one() {
        let now = Utc::now();
        let (starts, next) = pace(Some(5.0), now - Duration::seconds(10), now, 3);
        assert_eq!(starts[0], None);
        assert_eq!(starts[1], Some(now + Duration::milliseconds(200)));
        assert_eq!(starts[2], Some(now + Duration::milliseconds(400)));
        assert_eq!(next, now + Duration::milliseconds(600));
        let (later, _) = pace(Some(5.0), next, now, 1);
        assert_eq!(later, vec![Some(next)]);
        assert_eq!(pace(None, next, now, 2).0, vec![None, None]);
    }
}
