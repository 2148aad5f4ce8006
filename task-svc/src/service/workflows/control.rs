//! Cancelling a workflow: it is marked `cancelled` first (from then on nothing more of it is
//! released), then each live step is stopped as a job is, one transaction per step so a step's
//! task is never locked after its workflow. Retrying one: its steps that did not succeed wait
//! again, and those whose needs all succeeded run at once; a succeeded step never runs twice.

use std::collections::HashSet;

use shared::identity::Identity;
use uuid::Uuid;

use crate::{
    domain::{status::Status, workflow::WorkflowStatus, workflow_view::WorkflowView},
    error::TaskError,
    store, AppState,
};

/// Cancels workflow `id`: waiting steps never run, queued ones never start, running ones are
/// told to stop. 409 when it has completed or failed already.
pub async fn cancel(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<WorkflowView, TaskError> {
    let mut tx = state.pool.begin().await?;
    let row = super::query::owned(&mut tx, identity, id, true).await?;
    // Cancelling again stops what an interrupted cancel left live.
    if !matches!(
        row.status,
        WorkflowStatus::Running | WorkflowStatus::Cancelled
    ) {
        return Err(TaskError::conflict(
            "already_finished",
            format!("the workflow is {} already", row.status.as_str()),
        ));
    }
    if row.status == WorkflowStatus::Running {
        let cancelled =
            store::workflows::set_status(&mut tx, row.id, WorkflowStatus::Cancelled).await?;
        let steps = store::workflows::steps(&mut tx, row.id).await?;
        let failed = super::advance::failed(&steps);
        let event = crate::domain::events::workflow(&cancelled, steps.len(), failed)?;
        shared::outbox::enqueue_all(&mut tx, vec![event]).await?;
    }
    let live = store::workflows::live_tasks(&mut tx, row.id).await?;
    tx.commit().await?;
    for task_id in live {
        let mut tx = state.pool.begin().await?;
        let Some(task) = store::tasks::find(&mut tx, task_id, true).await? else {
            continue;
        };
        if !task.status.is_live_job() {
            continue;
        }
        let event = store::jobs::dispatch_event_of(&mut tx, task.id)
            .await?
            .flatten();
        let saved =
            crate::service::stop::stop(&mut tx, &state.cache, &task, event, identity.user_id)
                .await?;
        let audience = store::tasks::audience(&mut tx, &saved).await?;
        tx.commit().await?;
        state.cache.invalidate(&audience).await;
    }
    tracing::info!(workflow_id = %row.id, "workflow cancelled");
    super::query::read(state, identity, id).await
}

/// Runs failed or cancelled workflow `id` again from where it stopped: every step that did not
/// succeed (dead, cancelled, skipped) waits again with a clean job, except a map step that ran:
/// it resumes with only its runs that did not succeed run again. The workflow is `running`, and
/// the steps whose needs all succeeded are dispatched. 409 while it runs or once completed.
pub async fn retry(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<WorkflowView, TaskError> {
    reopen(state, identity, id).await?;
    super::query::read(state, identity, id).await
}

/// What [`retry`] does, without reading the workflow back: its dead, cancelled and skipped
/// steps wait (or run) again and it is `running` once more.
pub async fn reopen(state: &AppState, identity: &Identity, id: &str) -> Result<(), TaskError> {
    let mut tx = state.pool.begin().await?;
    let row = super::query::owned(&mut tx, identity, id, false).await?;
    let steps = store::workflows::steps(&mut tx, row.id).await?;
    let ran: HashSet<String> = store::workflows::map_runs(&mut tx, row.id)
        .await?
        .into_iter()
        .map(|(step, ..)| step)
        .collect();
    let (mut waiting, mut resumed, mut rerun) = (Vec::new(), Vec::new(), Vec::new());
    for step in &steps {
        if !(step.skipped || matches!(step.status, Status::Dead | Status::Cancelled)) {
            continue;
        }
        if step.map.is_some() && !step.skipped && ran.contains(&step.step) {
            resumed.push(step.task_id);
            rerun.extend(store::workflows::failed_runs(&mut tx, row.id, &step.step).await?);
        } else {
            waiting.push(step.task_id);
        }
    }
    // Tasks before their workflow, as everywhere; each checked again under its lock.
    let mut ids: Vec<Uuid> = waiting
        .iter()
        .chain(&resumed)
        .chain(&rerun)
        .copied()
        .collect();
    ids.sort_unstable();
    let mut tasks = Vec::with_capacity(ids.len());
    for task_id in &ids {
        if let Some(task) = store::tasks::find(&mut tx, *task_id, true).await? {
            if !task.status.is_live_job() {
                tasks.push(task);
            }
        }
    }
    let row = super::query::owned(&mut tx, identity, id, true).await?;
    if !matches!(
        row.status,
        WorkflowStatus::Failed | WorkflowStatus::Cancelled
    ) {
        return Err(TaskError::conflict(
            "not_retryable",
            format!(
                "the workflow is {}: only a failed or cancelled one runs again",
                row.status.as_str()
            ),
        ));
    }
    // A cancel that did not finish (Redis away) left live steps that a retry would not see.
    if row.status == WorkflowStatus::Cancelled
        && !store::workflows::live_tasks(&mut tx, row.id)
            .await?
            .is_empty()
    {
        return Err(TaskError::conflict(
            "cancel_unfinished",
            "steps of this cancelled workflow are still live: cancel it again, then retry",
        ));
    }
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    // Live again: within a member's quota of live jobs, as new ones are.
    if !identity.is_admin() {
        let (_, live) = store::jobs::live_counts(&mut tx, row.owner_id).await?;
        let max = state.config.jobs.member_max_live_jobs;
        if live + ids.len() as i64 > i64::from(max) {
            return Err(TaskError::Quota(format!(
                "{live} live jobs and {} steps run again would pass the quota of {max} \
                 (jobs.member_max_live_jobs); cancel some or wait for them to finish",
                ids.len()
            )));
        }
    }
    let reset = store::workflows::reset_steps(&mut tx, &ids).await?;
    let dead_pools: HashSet<String> = reset.iter().filter_map(|(p, _)| p.clone()).collect();
    // A step stopped by a cancel carries its cancel mark: taken away before the commit, and
    // its earlier dispatches marked done so that no copy of one runs.
    let earlier: Vec<Uuid> = reset.iter().filter_map(|(_, d)| *d).collect();
    let (redis, prefix) = (&state.cache.redis, &state.cache.prefix);
    if let Err(err) =
        crate::infra::dispatch_marks::clear_cancel_marks(redis, prefix, &earlier, &ids).await
    {
        tracing::warn!(error = %err, "cannot clear cancel marks for a retry");
        return Err(TaskError::Unavailable("redis"));
    }
    for task in &mut tasks {
        let status = if resumed.contains(&task.id) {
            Status::Running
        } else if rerun.contains(&task.id) {
            Status::Queued
        } else {
            Status::Pending
        };
        store::jobs::set_status(&mut tx, task, status).await?;
        if status == Status::Queued {
            crate::service::limits::dispatch_first(&mut tx, task).await?;
        }
    }
    store::workflows::set_status(&mut tx, row.id, WorkflowStatus::Running).await?;
    let released = super::advance::advance(&mut tx, &state.config.jobs, row.id).await?;
    let touched: Vec<&crate::domain::task::Task> = tasks.iter().chain(&released).collect();
    let audience = store::tasks::audience_many(&mut tx, &touched).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    for pool in dead_pools {
        crate::infra::amqp_pools::prune_dead_letters(state, &pool).await;
    }
    tracing::info!(workflow_id = %row.id, tasks = ids.len(), "workflow retried");
    Ok(())
}
