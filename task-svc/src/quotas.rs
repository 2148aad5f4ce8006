//! Bounds on what one member may ask of the job engine, so that no member can exhaust it: the
//! shortest cron interval, the longest timeout and sleep, the pools a job may name, live cron
//! templates and live jobs per member. Admins are bound only by the engine's own limits. The
//! `http` kind's headers are checked for everyone. Settings: `jobs.member_*` and `jobs.pools`.
//!
//! A value out of bounds is 422 (`invalid_job`, `cron_too_frequent`, `unknown_pool`); a count
//! past its quota is 429 `quota_exceeded`, nothing created.

use axum::http::StatusCode;
use chrono::Utc;
use shared::config::Config;
use shared::{identity::Identity, ApiError};
use sqlx::PgConnection;

use crate::domain::job::ParsedJob;

fn invalid(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable(code, detail)
}

/// The shortest gap between the next ticks of a schedule (looked at over its next 50).
fn shortest_gap(schedule: &cron::Schedule) -> Option<chrono::Duration> {
    let ticks: Vec<_> = schedule.upcoming(Utc).take(50).collect();
    ticks.windows(2).map(|pair| pair[1] - pair[0]).min()
}

/// The bounds of one job, before anything is written.
pub fn check_job(job: &ParsedJob, identity: &Identity, config: &Config) -> Result<(), ApiError> {
    if job.kind == "http" {
        if let Some(headers) = job.payload.get("headers").and_then(|h| h.as_object()) {
            for name in headers.keys() {
                if let Some(why) = shared::outbound::refused_header(name) {
                    return Err(invalid(
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
        return Err(invalid(
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
            return Err(invalid(
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
            return Err(invalid(
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

/// Whether `pool` may be named: one configured (`jobs.pools`, `workers.pools`), one an admin
/// opened, or any valid name for an admin (which opens it).
pub async fn check_pool(
    pool: &sqlx::PgPool,
    identity: &Identity,
    config: &Config,
    name: &str,
) -> Result<(), ApiError> {
    let configured = config.jobs.pools.iter().chain(&config.workers.pools);
    if configured.into_iter().any(|p| p == name) {
        return Ok(());
    }
    if identity.is_admin() {
        sqlx::query("INSERT INTO pools (name, created_by) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(identity.user_id)
            .execute(pool)
            .await?;
        return Ok(());
    }
    let opened: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pools WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    match opened {
        Some(_) => Ok(()),
        None => Err(invalid(
            "unknown_pool",
            format!("pool {name:?} is not configured (jobs.pools) and no admin has opened it"),
        )),
    }
}

/// Counts a member's live cron templates and jobs with the `new` ones inside `tx`. Without a lock:
/// requests of one member that commit at the same moment do not see each other, so together they
/// may pass a quota by what they create at once (at most the pool's connections times a bulk
/// request). Serialising every creation of a member would cost more than that overshoot.
pub async fn admit<'a>(
    tx: &mut PgConnection,
    identity: &Identity,
    config: &Config,
    new: impl Iterator<Item = &'a ParsedJob>,
) -> Result<(), ApiError> {
    if identity.is_admin() {
        return Ok(());
    }
    let (templates, runs) = new.fold((0i64, 0i64), |(t, r), job| match job.cron {
        Some(_) => (t + 1, r),
        None => (t, r + 1),
    });
    if templates + runs == 0 {
        return Ok(());
    }
    let (live_templates, live_jobs) = live(tx, identity.user_id).await?;
    let jobs = &config.jobs;
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
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                format!(
                    "{live} live {what} and {new} more would pass the quota of {max} ({setting}); \
                     cancel some or wait for them to finish"
                ),
            ));
        }
    }
    Ok(())
}

/// `owner`'s live cron templates and live jobs (waiting or running, templates not counted).
async fn live(tx: &mut PgConnection, owner: uuid::Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE cron IS NOT NULL), count(*) FILTER (WHERE cron IS NULL)
           FROM jobs WHERE owner_id = $1 AND finished_at IS NULL",
    )
    .bind(owner)
    .fetch_one(&mut *tx)
    .await
}

/// Whether a cron tick of `owner`'s is skipped because they already have `max_live` jobs
/// waiting or running (a template whose runs pile up on a saturated pool stops adding to them;
/// its next ticks run again once the backlog drains). Counted for every owner: the quota is far
/// above what a healthy admin schedule leaves waiting.
pub async fn skips_tick(
    tx: &mut PgConnection,
    owner: uuid::Uuid,
    max_live: u32,
) -> Result<bool, sqlx::Error> {
    let (_, live) = live(tx, owner).await?;
    let skip = live >= i64::from(max_live);
    if skip {
        metrics::counter!("taskmesh_cron_ticks_skipped_total").increment(1);
        tracing::warn!(%owner, live, "cron tick skipped: the owner's live jobs are at the quota");
    }
    Ok(skip)
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
