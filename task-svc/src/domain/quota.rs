//! Bounds on what one member may ask of the job engine, so that no member can exhaust it: the
//! shortest cron interval, the longest timeout and sleep, the pools a job may name, live cron
//! templates and live jobs per member. Admins are bound only by the engine's own limits. The
//! `http` kind's headers and the `command` kind's payload are checked for everyone. Settings: `jobs.member_*` and `jobs.pools`.
//!
//! A value out of bounds is 422 (`invalid_job`, `cron_too_frequent`, `unknown_pool`); a count
//! past its quota is 429 `quota_exceeded`, nothing created.

use chrono::Utc;
use shared::{
    config::{Config, JobsConfig},
    identity::Identity,
};

use crate::{domain::job::ParsedJob, error::TaskError};

/// The shortest gap between the next ticks of a schedule (looked at over its next 50).
pub fn shortest_gap(schedule: &cron::Schedule) -> Option<chrono::Duration> {
    let ticks: Vec<_> = schedule.upcoming(Utc).take(50).collect();
    ticks.windows(2).map(|pair| pair[1] - pair[0]).min()
}

/// The bounds of one job, before anything is written.
pub fn check_job(job: &ParsedJob, identity: &Identity, config: &Config) -> Result<(), TaskError> {
    if job.kind == "command" {
        shared::commands::CommandRequest::parse(&job.payload)
            .map_err(|why| TaskError::invalid("invalid_job", why))?;
    }
    if job.kind == "http" {
        if let Some(headers) = job.payload.get("headers").and_then(|h| h.as_object()) {
            for name in headers.keys() {
                if let Some(why) = shared::outbound::refused_header(name) {
                    return Err(TaskError::invalid(
                        "invalid_job",
                        format!("payload.headers: {name:?} is refused: {why}"),
                    ));
                }
            }
        }
    }
    if identity.is_admin() {
        return Ok(());
    }
    let jobs = &config.jobs;
    let longest =
        i64::try_from(jobs.member_max_timeout_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    if job.timeout_ms > longest {
        return Err(TaskError::invalid(
            "invalid_job",
            format!(
                "timeout_secs may be at most {} (jobs.member_max_timeout_secs)",
                jobs.member_max_timeout_secs
            ),
        ));
    }
    if job.kind == "sleep" {
        let ms = job.payload.get("ms").and_then(|v| v.as_u64()).unwrap_or(0);
        if ms > jobs.member_max_sleep_ms {
            return Err(TaskError::invalid(
                "invalid_job",
                format!(
                    "a sleep may last at most {} ms (jobs.member_max_sleep_ms)",
                    jobs.member_max_sleep_ms
                ),
            ));
        }
    }
    if let Some((expression, schedule)) = &job.cron {
        let least = chrono::Duration::seconds(jobs.member_min_cron_interval_secs as i64);
        if shortest_gap(schedule).is_some_and(|gap| gap < least) {
            return Err(TaskError::invalid(
                "cron_too_frequent",
                format!(
                    "cron {expression:?} fires more often than every {} s (jobs.member_min_cron_interval_secs)",
                    jobs.member_min_cron_interval_secs
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a member with `live` (cron templates, jobs) may add `new` more of each.
pub fn within_quotas(
    jobs: &JobsConfig,
    live: (i64, i64),
    new: (i64, i64),
) -> Result<(), TaskError> {
    let ((live_templates, live_jobs), (templates, runs)) = (live, new);
    let quotas = [
        (
            "cron templates",
            live_templates,
            templates,
            jobs.member_max_cron_templates,
            "jobs.member_max_cron_templates",
        ),
        (
            "jobs",
            live_jobs,
            runs,
            jobs.member_max_live_jobs,
            "jobs.member_max_live_jobs",
        ),
    ];
    for (what, live, new, max, setting) in quotas {
        if new > 0 && live + new > i64::from(max) {
            return Err(TaskError::Quota(format!(
                "{live} live {what} and {new} more would pass the quota of {max} ({setting}); \
                     cancel some or wait for them to finish"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_of_a_schedule_is_its_shortest_between_ticks() {
        let gap = |e: &str| shortest_gap(&crate::domain::job::parse_cron(e).unwrap()).unwrap();
        assert_eq!(gap("* * * * * *"), chrono::Duration::seconds(1));
        assert_eq!(gap("*/5 * * * *"), chrono::Duration::minutes(5));
        assert_eq!(gap("0,1 * * * *"), chrono::Duration::minutes(1));
        assert_eq!(gap("0 9 * * *"), chrono::Duration::days(1));
    }
}
