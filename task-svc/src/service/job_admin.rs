//! Admins' actions on jobs they picked: deleting a dead job (with its task), and one action —
//! run now, cancel, replay or delete — on up to 1000 jobs named by id, each as its own call
//! would (a job the action does not apply to is skipped and counted, the others go on).

use shared::identity::Identity;
use uuid::Uuid;

use crate::{
    domain::{
        job::DeadSelection,
        job_search::{BulkAction, BulkOutcome, BulkRequest},
        status::Status,
    },
    error::TaskError,
    infra::amqp_pools::prune_dead_letters,
    service::{dead, deletion, operations, stop},
    store, AppState,
};

/// Most jobs one bulk call names.
pub const MAX_BULK: usize = 1000;

/// Deletes dead job `id` with its task (as `DELETE /api/v1/tasks/{id}` would, for an admin),
/// off the dead list and out of its pool's dead-letter queue; 404 if there is no such task,
/// 409 `not_dead` if its job is not dead.
pub async fn delete_dead(state: &AppState, identity: &Identity, id: &str) -> Result<(), TaskError> {
    let task_id = Uuid::parse_str(id).map_err(|_| TaskError::NotFound("job"))?;
    let mut tx = state.pool.begin().await?;
    let task = store::tasks::find(&mut tx, task_id, true)
        .await?
        .ok_or(TaskError::NotFound("job"))?;
    if task.status != Status::Dead {
        return Err(TaskError::conflict(
            "not_dead",
            format!(
                "this job is {}: only a dead job is deleted here (cancel a live one first)",
                task.status
            ),
        ));
    }
    let pools = store::dead::mark_purged(&mut tx, &[task.id]).await?;
    let audience = deletion::delete_locked(&mut tx, state, identity, &task).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    for pool in pools {
        prune_dead_letters(state, &pool).await;
    }
    tracing::info!(task_id = %task.id, "dead job deleted");
    Ok(())
}

/// Applies `request.action` to each job it names (at most [`MAX_BULK`], each once).
pub async fn bulk(
    state: &AppState,
    identity: &Identity,
    request: &BulkRequest,
) -> Result<BulkOutcome, TaskError> {
    if request.task_ids.is_empty() || request.task_ids.len() > MAX_BULK {
        return Err(TaskError::invalid(
            "invalid_selection",
            format!("name 1 to {MAX_BULK} task_ids"),
        ));
    }
    let mut ids = request.task_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    let total = ids.len() as u64;
    let done = match request.action {
        BulkAction::Replay => {
            let selection = DeadSelection {
                pool: None,
                task_ids: Some(ids),
            };
            match dead::replay_dead(state, identity, &selection).await {
                Ok(count) => count,
                // None ran again: every one was skipped.
                Err(TaskError::Conflict { .. }) => 0,
                Err(err) => return Err(err),
            }
        }
        action => {
            let mut done = 0;
            for id in ids {
                if one(state, identity, action, id).await? {
                    done += 1;
                }
            }
            done
        }
    };
    tracing::info!(action = ?request.action, done, skipped = total - done, "bulk job action");
    Ok(BulkOutcome {
        done,
        skipped: total - done,
    })
}

/// `action` on job `id`: whether it applied (false when the job's state or its absence
/// refused it).
async fn one(
    state: &AppState,
    identity: &Identity,
    action: BulkAction,
    id: Uuid,
) -> Result<bool, TaskError> {
    let raw = id.to_string();
    let outcome = match action {
        BulkAction::RetryNow => operations::retry_now(state, identity, &raw).await.map(drop),
        BulkAction::Cancel => stop::cancel(state, identity, &raw).await.map(drop),
        BulkAction::Delete => delete_dead(state, identity, &raw).await,
        BulkAction::Replay => {
            let selection = DeadSelection {
                pool: None,
                task_ids: Some(vec![id]),
            };
            dead::replay_dead(state, identity, &selection)
                .await
                .and_then(|count| match count {
                    0 => Err(TaskError::NotFound("dead job")),
                    _ => Ok(()),
                })
        }
    };
    match outcome {
        Ok(()) => Ok(true),
        Err(
            TaskError::Conflict { .. }
            | TaskError::NotFound(_)
            | TaskError::Invalid { .. }
            | TaskError::Forbidden(_),
        ) => Ok(false),
        Err(err) => Err(err),
    }
}
