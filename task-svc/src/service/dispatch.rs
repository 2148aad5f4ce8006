//! A job's dispatch: handing it to its pool (an outbox row on `job.dispatch.<pool>`), for a
//! retry, a replay, a released workflow step or a job its limit admits.

use chrono::{DateTime, Utc};
use shared::outbox;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::events::{assigned_event, dispatch_event},
    domain::job::ParsedJob,
    domain::task::Task,
    store,
};

/// Hands `task`'s job to its pool as attempt `attempt`, not before `at`: a new dispatch id and
/// an outbox row on `job.dispatch.<pool>`. `announce` also publishes `task.assigned`.
pub async fn dispatch(
    tx: &mut PgConnection,
    task: &Task,
    attempt: i32,
    at: Option<DateTime<Utc>>,
    announce: bool,
) -> Result<Uuid, sqlx::Error> {
    let settings = store::jobs::dispatch_settings(tx, task.id).await?;
    dispatch_with(tx, task, settings, attempt, at, announce).await
}

/// As [`dispatch`], with the job's settings already read.
pub async fn dispatch_with(
    tx: &mut PgConnection,
    task: &Task,
    settings: store::jobs::DispatchSettings,
    attempt: i32,
    at: Option<DateTime<Utc>>,
    announce: bool,
) -> Result<Uuid, sqlx::Error> {
    let step = settings
        .workflow_id
        .map(|workflow_id| crate::domain::workflow::StepRun {
            workflow_id,
            step: settings.step.clone().unwrap_or_default(),
            inputs: settings.inputs.clone(),
            item: settings.item.clone(),
        });
    let job = ParsedJob {
        kind: settings.kind,
        payload: settings.payload,
        pool: settings.pool,
        run_at: None,
        cron: None,
        max_attempts: settings.max_attempts,
        backoff_base_ms: 0,
        backoff_max_ms: 0,
        timeout_ms: settings.timeout_ms,
        unique_key: None,
        held: false,
        step,
        limit: None,
    };
    let (dispatch_id, pending) = dispatch_event(task, &job, attempt, at)?;
    store::jobs::set_dispatch(tx, task.id, attempt, dispatch_id, pending.event.id).await?;
    let mut events = vec![pending];
    if announce {
        events.push(assigned_event(task, &job.pool)?);
    }
    outbox::enqueue_all(tx, events).await?;
    Ok(dispatch_id)
}
