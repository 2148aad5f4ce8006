//! The operator's cron templates: every live template with its next ticks and last runs, and
//! pause, resume and run now. Resuming continues the schedule from that moment (ticks missed
//! while paused do not run); running now makes one run at once, beside the schedule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    domain::job::{parse_cron, CronTemplateRow},
    domain::task::Task,
    error::TaskError,
    store, AppState,
};

/// One run of a template.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CronRun {
    pub task_id: Uuid,
    /// The tick it ran for.
    pub scheduled_for: DateTime<Utc>,
    pub status: String,
}

/// A live cron template.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CronTemplate {
    #[serde(flatten)]
    pub template: CronTemplateRow,
    /// Its next three ticks (none while paused).
    pub next_ticks: Vec<DateTime<Utc>>,
    /// Its last five runs, newest first.
    pub last_runs: Vec<CronRun>,
}

/// Every live template, the running ones first by their next tick, at most 500.
pub async fn list(state: &AppState) -> Result<Vec<CronTemplate>, TaskError> {
    templates(state, None).await
}

/// Every live template, or only `only`.
async fn templates(state: &AppState, only: Option<Uuid>) -> Result<Vec<CronTemplate>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let rows = store::cron::templates(&mut conn, only).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.task_id).collect();
    let mut last: HashMap<Uuid, Vec<CronRun>> = HashMap::new();
    for (parent, task_id, scheduled_for, status) in store::cron::last_runs(&mut conn, &ids).await? {
        last.entry(parent).or_default().push(CronRun {
            task_id,
            scheduled_for,
            status,
        });
    }
    let now = Utc::now();
    Ok(rows
        .into_iter()
        .map(|row| {
            let last_runs = last.remove(&row.task_id).unwrap_or_default();
            let next_ticks = match row.paused_at {
                Some(_) => Vec::new(),
                None => parse_cron(&row.cron)
                    .map(|schedule| schedule.after(&now).take(3).collect())
                    .unwrap_or_default(),
            };
            CronTemplate {
                template: row,
                next_ticks,
                last_runs,
            }
        })
        .collect())
}

/// Template `id` as the list shows it.
async fn one(state: &AppState, id: Uuid) -> Result<CronTemplate, TaskError> {
    templates(state, Some(id))
        .await?
        .pop()
        .ok_or(TaskError::NotFound("cron template"))
}

fn template_id(raw: &str) -> Result<Uuid, TaskError> {
    Uuid::parse_str(raw).map_err(|_| TaskError::NotFound("cron template"))
}

/// Pauses (`paused`) or resumes template `id`; resuming sets its next tick after now.
pub async fn set_paused(
    state: &AppState,
    id: &str,
    paused: bool,
) -> Result<CronTemplate, TaskError> {
    let id = template_id(id)?;
    let mut tx = state.pool.begin().await?;
    let (cron, _) = store::cron::lock_template(&mut tx, id)
        .await?
        .ok_or(TaskError::NotFound("cron template"))?;
    let next = match paused {
        true => None,
        false => parse_cron(&cron)?.after(&Utc::now()).next(),
    };
    store::cron::set_paused(&mut tx, id, paused, next).await?;
    tx.commit().await?;
    tracing::info!(template_id = %id, paused, "cron template paused or resumed");
    one(state, id).await
}

/// Longest cron expression an admin may give, in bytes.
const MAX_CRON_BYTES: usize = 100;

/// Template `id` runs on schedule `cron` from now on: its next tick is the first after now
/// (a paused template stays paused, and resuming sets its next tick again).
pub async fn set_schedule(
    state: &AppState,
    id: &str,
    cron: &str,
) -> Result<CronTemplate, TaskError> {
    let id = template_id(id)?;
    let cron = cron.trim();
    if cron.len() > MAX_CRON_BYTES {
        return Err(TaskError::invalid(
            "invalid_job",
            format!("cron is longer than {MAX_CRON_BYTES} bytes"),
        ));
    }
    let next = parse_cron(cron)?.after(&Utc::now()).next();
    let mut tx = state.pool.begin().await?;
    store::cron::lock_template(&mut tx, id)
        .await?
        .ok_or(TaskError::NotFound("cron template"))?;
    store::cron::set_schedule(&mut tx, id, cron, next).await?;
    tx.commit().await?;
    tracing::info!(template_id = %id, cron, "cron template's schedule changed");
    one(state, id).await
}

/// Makes one run of template `id` now (paused or not); the run's task.
pub async fn run_now(state: &AppState, id: &str) -> Result<Task, TaskError> {
    let id = template_id(id)?;
    let mut tx = state.pool.begin().await?;
    store::cron::lock_template(&mut tx, id)
        .await?
        .ok_or(TaskError::NotFound("cron template"))?;
    let template = store::tasks::find(&mut tx, id, false)
        .await?
        .ok_or(TaskError::NotFound("cron template"))?;
    let run = crate::service::cron::run_tick(&mut tx, &template, Utc::now())
        .await?
        .ok_or_else(|| {
            TaskError::conflict("tick_taken", "a run of this moment exists; try again")
        })?;
    let audience = store::tasks::audience(&mut tx, &run).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    tracing::info!(template_id = %id, run_id = %run.id, "cron template run now");
    Ok(run)
}
