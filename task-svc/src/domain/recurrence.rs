//! Recurring tasks: a task's `recurrence` is an RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO`), and
//! completing it creates the next one, due at the series' next occurrence. The series starts at
//! the task's due date (or, without one, when it is completed); a `COUNT` counts the tasks
//! still to come, so each next task carries the rule with its count lowered. Pure: no I/O.

use chrono::{DateTime, Utc};
use rrule::{Frequency, RRule, RRuleSet, Unvalidated};

use crate::error::TaskError;

/// Longest rule accepted, in characters.
pub const MAX_LEN: usize = 200;
/// Most occurrences passed over to find the next one (a daily rule 27 years overdue).
const MAX_STEPS: usize = 10_000;

fn invalid() -> TaskError {
    TaskError::invalid(
        "invalid_recurrence",
        "recurrence must be an RFC 5545 RRULE of at most 200 characters, hourly or rarer, such as FREQ=WEEKLY;BYDAY=MO",
    )
}

/// The rule, upper-cased and without an `RRULE:` prefix, if it is one this API runs.
pub fn parse(raw: &str) -> Result<String, TaskError> {
    let rule = raw.trim().to_ascii_uppercase();
    let rule = rule.strip_prefix("RRULE:").unwrap_or(&rule).to_string();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '=' | ';' | ',' | '-' | '+');
    if rule.is_empty() || rule.len() > MAX_LEN || !rule.chars().all(allowed) {
        return Err(invalid());
    }
    let parsed: RRule<Unvalidated> = rule.parse().map_err(|_| invalid())?;
    if matches!(parsed.get_freq(), Frequency::Minutely | Frequency::Secondly) {
        return Err(invalid());
    }
    series(&rule, Utc::now())?;
    Ok(rule)
}

/// The series `rule` makes from `start`.
fn series(rule: &str, start: DateTime<Utc>) -> Result<RRuleSet, TaskError> {
    let start = start.format("%Y%m%dT%H%M%SZ");
    format!("DTSTART:{start}\nRRULE:{rule}")
        .parse()
        .map_err(|_| invalid())
}

/// The task after one completed at `now`: its due date (the first occurrence after both `now`
/// and `due`, of the series that starts at `due`, or at `now` without one) and the rule it
/// carries. `None` when the series has ended.
pub fn next(
    rule: &str,
    due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, String)> {
    let start = due.unwrap_or(now);
    let after = start.max(now);
    let set = series(rule, start).ok()?;
    let (index, at) = set
        .into_iter()
        .take(MAX_STEPS)
        .map(|at| at.with_timezone(&Utc))
        .enumerate()
        .find(|(_, at)| *at > after)?;
    Some((at, with_count_lowered(rule, index)))
}

/// `rule` with its `COUNT` lowered by `by` (the occurrences passed); as it is without one.
fn with_count_lowered(rule: &str, by: usize) -> String {
    rule.split(';')
        .map(|part| match part.strip_prefix("COUNT=") {
            Some(count) => {
                let count: usize = count.parse().unwrap_or(1);
                format!("COUNT={}", count.saturating_sub(by).max(1))
            }
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn rules_are_checked_and_normalised() {
        assert_eq!(
            parse(" rrule:freq=weekly;byday=mo ").unwrap(),
            "FREQ=WEEKLY;BYDAY=MO"
        );
        for bad in [
            "",
            "FREQ=SOMETIMES",
            "FREQ=MINUTELY",
            "FREQ=DAILY\nEXDATE:20260101T000000Z",
            "DTSTART:20260101T000000Z",
            &"FREQ=DAILY;".repeat(30),
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_next_task_is_due_at_the_next_occurrence() {
        // Monday 2026-12-07 09:00, weekly on Mondays: completed on Tuesday → the 14th.
        let due = at(2026, 12, 7, 9);
        let (monday, rule) = next("FREQ=WEEKLY;BYDAY=MO", Some(due), at(2026, 12, 8, 12)).unwrap();
        assert_eq!(monday, at(2026, 12, 14, 9));
        assert_eq!(rule, "FREQ=WEEKLY;BYDAY=MO");
        // Completed three weeks late: the next one is still ahead, not in the past.
        let (late, _) = next("FREQ=WEEKLY;BYDAY=MO", Some(due), at(2026, 12, 29, 10)).unwrap();
        assert_eq!(late, at(2027, 1, 4, 9));
        // No due date: the series starts when it is completed.
        let (daily, _) = next("FREQ=DAILY", None, at(2026, 12, 8, 12)).unwrap();
        assert_eq!(daily, at(2026, 12, 9, 12));
    }

    #[test]
    fn a_count_counts_the_tasks_still_to_come_and_ends_the_series() {
        let due = at(2026, 12, 1, 9);
        let (second, rule) = next("FREQ=DAILY;COUNT=3", Some(due), due).unwrap();
        assert_eq!(
            (second, rule.as_str()),
            (at(2026, 12, 2, 9), "FREQ=DAILY;COUNT=2")
        );
        let (third, rule) = next(&rule, Some(second), second).unwrap();
        assert_eq!(
            (third, rule.as_str()),
            (at(2026, 12, 3, 9), "FREQ=DAILY;COUNT=1")
        );
        assert_eq!(next(&rule, Some(third), third), None);
        let until = "FREQ=DAILY;UNTIL=20261202T090000Z";
        assert_eq!(
            next(until, Some(at(2026, 12, 2, 9)), at(2026, 12, 2, 9)),
            None
        );
    }
}
