//! When a delivery is tried again (pure): `webhooks.schedule_secs`, stretched by a receiver's
//! `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest `Retry-After` obeyed: a receiver cannot park a delivery for longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait before the next attempt after `attempts_made` failed ones, or `None` when the
/// schedule is spent and the delivery has failed. `retry_after` (429 and 503 only) is a floor.
pub fn next_delay(
    schedule_secs: &[u64],
    attempts_made: u32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let planned = Duration::from_secs(*schedule_secs.get(attempts_made as usize)?);
    Some(planned.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
}

/// A `Retry-After` value: delay seconds or an HTTP date (RFC 9110), as a wait from `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default().min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_out_after_its_last_entry() {
        let schedule = [0, 5, 300];
        assert_eq!(next_delay(&schedule, 1, None), Some(Duration::from_secs(5)));
        assert_eq!(
            next_delay(&schedule, 2, None),
            Some(Duration::from_secs(300))
        );
        assert_eq!(next_delay(&schedule, 3, None), None);
    }

    #[test]
    fn retry_after_is_a_capped_floor() {
        let schedule = [0, 5, 300];
        let wait = |s| Some(Duration::from_secs(s));
        assert_eq!(next_delay(&schedule, 1, wait(60)), wait(60));
        assert_eq!(next_delay(&schedule, 2, wait(60)), wait(300));
        assert_eq!(next_delay(&schedule, 1, wait(10 * 86400)), wait(86400));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
