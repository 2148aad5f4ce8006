//! Members' quotas checked against what they have live (see [`crate::domain::quota`]).

use shared::{config::Config, identity::Identity};
use sqlx::PgConnection;

use crate::{
    domain::{job::ParsedJob, quota::within_quotas},
    error::TaskError,
    store,
};

/// Whether `pool` may be named: one configured (`jobs.pools`, `workers.pools`), one an admin
/// opened, or any valid name for an admin (which opens it).
pub async fn check_pool(
    pool: &sqlx::PgPool,
    identity: &Identity,
    config: &Config,
    name: &str,
) -> Result<(), TaskError> {
    let configured = config.jobs.pools.iter().chain(&config.workers.pools);
    if configured.into_iter().any(|p| p == name) {
        return Ok(());
    }
    if identity.is_admin() {
        store::pools::open(pool, name, identity.user_id).await?;
        return Ok(());
    }
    match store::pools::is_open(pool, name).await? {
        true => Ok(()),
        false => Err(TaskError::invalid(
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
) -> Result<(), TaskError> {
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
    let (live_templates, live_jobs) = store::jobs::live_counts(tx, identity.user_id).await?;
    within_quotas(&config.jobs, (live_templates, live_jobs), (templates, runs))?;
    Ok(())
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
    let (_, live) = store::jobs::live_counts(tx, owner).await?;
    let skip = live >= i64::from(max_live);
    if skip {
        metrics::counter!("taskmesh_cron_ticks_skipped_total").increment(1);
        tracing::warn!(%owner, live, "cron tick skipped: the owner's live jobs are at the quota");
    }
    Ok(skip)
}
