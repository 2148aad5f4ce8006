//! Cancelling a workflow: it is marked `cancelled` first (from then on nothing more of it is
//! released), then each live step is stopped as a job is, one transaction per step so a step's
//! task is never locked after its workflow.

use shared::identity::Identity;

use crate::{
    domain::{workflow::WorkflowStatus, workflow_view::WorkflowView},
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
    store::workflows::set_status(&mut tx, row.id, WorkflowStatus::Cancelled).await?;
    let steps = store::workflows::steps(&mut tx, row.id).await?;
    tx.commit().await?;
    for step in steps.iter().filter(|s| s.status.is_live_job()) {
        let mut tx = state.pool.begin().await?;
        let Some(task) = store::tasks::find(&mut tx, step.task_id, true).await? else {
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
