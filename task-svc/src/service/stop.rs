//! Stopping a job: the one way a job is cancelled, whether its editor asks (`POST
//! /api/v1/tasks/{id}/cancel`) or the platform does: its owner was deactivated or deleted
//! (every live cron template and every job not yet running stops), or left or was removed from a
//! channel (the same, for their jobs in that channel).
//!
//! An unpublished dispatch with an outbox row of its own (a scheduled run, a retry) is dropped
//! from the outbox; any other (published, or sharing its transaction's row) is marked in Redis before
//! the commit, so that no worker starts it, and a running one is told to stop by a `job.cancel`
//! broadcast. A cron template stops ticking.

use shared::{identity::Identity, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{status::Status, task::Task},
    error::TaskError,
    infra::list_cache::ListCache,
    store, AppState,
};

/// How long a cancel mark stays: longer than any dispatch waits in a queue in practice.
const CANCEL_MARK_SECS: u64 = 7 * 86_400;

/// Stops `task`'s live job inside `tx` (cancel marks go to `marks`' Redis) and saves the task as `cancelled` by `actor`; returns it
/// saved (with its job).
pub async fn stop(
    tx: &mut PgConnection,
    marks: &ListCache,
    task: &Task,
    dispatch_event: Option<Uuid>,
    actor: Uuid,
) -> Result<Task, TaskError> {
    let dropped = match dispatch_event {
        Some(event) => crate::store::jobs::drop_unpublished(tx, event).await?,
        None => true,
    };
    let in_hand = !dropped || task.status == Status::Running;
    if in_hand {
        // Marked before commit: once the cancel is visible, no worker may start the job.
        let mut redis = marks.redis.clone();
        let marked: redis::RedisResult<()> = redis::cmd("SET")
            .arg(shared::cache::cancel_mark_key(&marks.prefix, task.id))
            .arg(1)
            .arg("EX")
            .arg(CANCEL_MARK_SECS)
            .query_async(&mut redis)
            .await;
        if let Err(err) = marked {
            tracing::warn!(error = %err, "cannot mark a job cancelled in Redis");
            return Err(TaskError::Unavailable("redis"));
        }
        let dispatch = store::jobs::current_dispatch(tx, task.id).await?;
        let cancel = crate::domain::events::job_cancel(task.id, dispatch)?;
        outbox::enqueue_all(tx, vec![cancel]).await?;
    }
    crate::store::jobs::mark_stopped(tx, task.id, in_hand).await?;
    let mut after = task.clone();
    after.status = Status::Cancelled;
    let changes = crate::domain::task::status_change(task, &after);
    let mut saved = crate::service::tasks::save(tx, &after, actor, changes).await?;
    crate::store::jobs::attach(tx, std::slice::from_mut(&mut saved)).await?;
    Ok(saved)
}

/// Stops live job `task` as [`stop`] does, finding its dispatch's outbox event itself.
pub async fn stop_live(
    tx: &mut PgConnection,
    marks: &ListCache,
    task: &Task,
    actor: Uuid,
) -> Result<Task, TaskError> {
    let dispatch_event = store::jobs::dispatch_event_of(tx, task.id).await?.flatten();
    stop(tx, marks, task, dispatch_event, actor).await
}

/// Stops `owner`'s live cron templates and jobs not yet running (only those in `channel`, if
/// given), recorded as done by the platform (the nil actor). Returns everyone whose list changed.
pub async fn stop_owned(
    tx: &mut PgConnection,
    marks: &ListCache,
    owner: Uuid,
    channel: Option<Uuid>,
) -> Result<Vec<Uuid>, TaskError> {
    // A user's going stops their workflows first (a channel holds no steps): nothing more of
    // them is released, and their waiting steps are then stopped with the rest.
    if channel.is_none() {
        crate::service::workflows::advance::cancel_owned(tx, owner).await?;
    }
    // Locked as it is read: a row a concurrent commit changed is checked again under the lock,
    // so a job that finished meanwhile is left as it ended.
    let live = crate::store::jobs::live_owned(tx, owner, channel).await?;
    let mut audience = Vec::new();
    for (task_id, dispatch_event) in live {
        let task = crate::store::tasks::find(tx, task_id, false)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let saved = stop(tx, marks, &task, dispatch_event, Uuid::nil()).await?;
        audience.extend(crate::store::tasks::audience(tx, &saved).await?);
    }
    if !audience.is_empty() {
        tracing::info!(%owner, ?channel, "stopped a user's jobs");
    }
    Ok(audience)
}

/// Cancels task `id`'s job for `identity`: a queued job never starts, a running one is told to
/// stop, a cron template stops ticking. A person's task moves to `cancelled` by the ordinary
/// state machine.
pub async fn cancel(state: &AppState, identity: &Identity, id: &str) -> Result<Task, TaskError> {
    let mut tx = state.pool.begin().await?;
    let mut step = None;
    if let Ok(task_id) = Uuid::parse_str(id) {
        step = store::workflows::step_of_task(&mut tx, task_id).await?;
        if let Some((workflow, _)) = step {
            // A waiting step changes only under its workflow's lock, taken before the step's,
            // as a release does.
            let task = store::tasks::find(&mut tx, task_id, false).await?;
            if task.is_some_and(|t| t.status == Status::Pending) {
                store::workflows::find(&mut tx, workflow, true).await?;
            }
        }
    }
    let task = crate::service::operations::editable_job(&mut tx, identity, id, "cancel it").await?;
    if step.is_some_and(|(_, map)| map) {
        return Err(TaskError::conflict(
            "map_step",
            "this step stands for its map's runs: cancel the workflow, or the runs, instead",
        ));
    }
    let Some(dispatch_event) = store::jobs::dispatch_event_of(&mut tx, task.id).await? else {
        crate::domain::status::check(task.status, Status::Cancelled)?;
        let mut after = task.clone();
        after.status = Status::Cancelled;
        let changes = crate::domain::task::status_change(&task, &after);
        let saved = crate::service::tasks::save(&mut tx, &after, identity.user_id, changes).await?;
        let audience = crate::store::tasks::audience(&mut tx, &saved).await?;
        tx.commit().await?;
        state.cache.invalidate(&audience).await;
        return Ok(saved);
    };
    if !task.status.is_live_job() {
        return Err(TaskError::conflict(
            "already_finished",
            format!("the job is {} already", task.status),
        ));
    }
    let saved = stop(
        &mut tx,
        &state.cache,
        &task,
        dispatch_event,
        identity.user_id,
    )
    .await?;
    // A workflow step cancelled on its own: its dependents are skipped.
    let moved = crate::service::workflows::advance::after_changes(
        &mut tx,
        &state.config.jobs,
        std::slice::from_ref(&saved),
        Vec::new(),
    )
    .await?;
    let mut touched: Vec<&Task> = moved.iter().collect();
    touched.push(&saved);
    let audience = crate::store::tasks::audience_many(&mut tx, &touched).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    Ok(saved)
}
