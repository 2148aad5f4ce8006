//! Deleting a task (`DELETE /api/v1/tasks/{id}`): its editor's, not while it is a workflow's
//! step; a live job is stopped first, so nothing of it runs after.

use shared::{identity::Identity, outbox};

use crate::{
    domain::{events, task::check_if_match, task::Task},
    error::TaskError,
    store, AppState,
};

/// Deletes task `id` for `identity` (its creator, its channel's owner or an admin), if
/// `if_match` names its current version; `task.deleted` tells everyone who could see it.
pub async fn delete(
    state: &AppState,
    identity: &Identity,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), TaskError> {
    let mut tx = state.pool.begin().await?;
    let (task, access) = crate::service::tasks::visible(&mut tx, identity, id, true).await?;
    if !access.edit {
        return Err(TaskError::Forbidden(
            "only the task's creator, its channel's owner or an admin can delete it".into(),
        ));
    }
    check_if_match(if_match, &task)?;
    // Deleting a job stops it: for a personal access token, what cancelling needs.
    let scope = shared::scopes::Scope::JobsWrite;
    if task.job.is_some() && identity.scopes.is_some_and(|s| !s.contains(scope)) {
        return Err(TaskError::MissingScope(scope));
    }
    let audience = delete_locked(&mut tx, state, identity, &task).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    Ok(())
}

/// Deletes `task`, locked in `tx`, for `identity` (who may): not a workflow's step (409); a
/// live job stopped first. Returns who could see it, whose caches to drop once committed.
pub async fn delete_locked(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    identity: &Identity,
    task: &Task,
) -> Result<Vec<uuid::Uuid>, TaskError> {
    if let Some(workflow) = store::workflows::of_tasks(&mut *tx, &[task.id])
        .await?
        .pop()
    {
        return Err(TaskError::conflict(
            "workflow_step",
            format!("this task is a step of workflow {workflow}: cancel the workflow instead"),
        ));
    }
    // A live job stops first, as a cancel stops it: a queued one never starts, a running one
    // is told to stop (a deleted task's run would otherwise go on, and a queued one still run).
    if task.status.is_live_job() {
        crate::service::stop::stop_live(&mut *tx, &state.cache, task, identity.user_id).await?;
    }
    store::tasks::delete(&mut *tx, &[task.id]).await?;
    let gone = Task {
        due_at: None,
        ..task.clone()
    };
    crate::service::tasks::reschedule(&mut *tx, &gone, 0).await?;
    let audience = crate::store::tasks::audience(&mut *tx, task).await?;
    let deleted = events::deleted(task, identity.user_id, audience.clone())?;
    outbox::enqueue_all(&mut *tx, vec![deleted]).await?;
    Ok(audience)
}
