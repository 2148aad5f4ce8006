//! `Range: bytes=…` (RFC 9110 §14): one range of a file, so large downloads resume.

use std::ops::Range;

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// No header, or one this server does not serve as ranges (several ranges, other units,
    /// nonsense): the whole file, 200.
    Whole,
    /// One satisfiable range, 206.
    Part(Range<u64>),
    /// A range wholly past the end, 416.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(end) {
            Some(0) => return Wanted::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return Wanted::Whole,
        },
        // bytes=N-: from N to the end.
        (false, true) => match number(start) {
            Some(from) => from..size,
            None => return Wanted::Whole,
        },
        (false, false) => match (number(start), number(end)) {
            (Some(from), Some(to)) if from <= to => from..to.saturating_add(1).min(size),
            _ => return Wanted::Whole,
        },
        (true, true) => return Wanted::Whole,
    };
    if range.start >= size {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_served_and_others_are_the_whole_file() {
        assert_eq!(parse(None, 100), Wanted::Whole);
        assert_eq!(parse(Some("bytes=0-9"), 100), Wanted::Part(0..10));
        assert_eq!(parse(Some("bytes=90-"), 100), Wanted::Part(90..100));
        assert_eq!(parse(Some("bytes=-10"), 100), Wanted::Part(90..100));
        assert_eq!(parse(Some("bytes=-1000"), 100), Wanted::Part(0..100));
        assert_eq!(parse(Some("bytes=50-1000"), 100), Wanted::Part(50..100));
        assert_eq!(parse(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,5-6"), 100), Wanted::Whole);
        assert_eq!(parse(Some("bytes=9-1"), 100), Wanted::Whole);
        assert_eq!(parse(Some("items=0-1"), 100), Wanted::Whole);
        assert_eq!(parse(Some("bytes=x-"), 100), Wanted::Whole);
    }
}
