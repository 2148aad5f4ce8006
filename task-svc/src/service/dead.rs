//! Dead jobs, for admins: queued again with a fresh budget of attempts (replay), or taken off
//! the dead list (purge); either way out of their pools' dead-letter queues.

use std::collections::{HashMap, HashSet};

use shared::{identity::Identity, paging::Limit};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        job::{DeadJob, DeadSelection},
        job_search::{DeadQuery, JobQuery},
        status::Status,
        task::Task,
    },
    error::TaskError,
    infra::amqp_pools::prune_dead_letters,
    store, AppState,
};

/// Dead jobs not purged that match `query` (pool, kind, error text), newest first; `limit` 1
/// to 1000 (default 100).
pub async fn list(state: &AppState, query: &DeadQuery) -> Result<Vec<DeadJob>, TaskError> {
    let limit = Limit::new(100, 1000).clamp(query.limit);
    let filter = JobQuery {
        kind: query.kind.clone(),
        pool: query.pool.clone(),
        error: query.error.clone(),
        ..JobQuery::default()
    }
    .filter()?;
    Ok(store::dead::dead_list(&state.pool, &filter, limit).await?)
}

/// Queues the dead jobs `selection` names again, each with a fresh budget of attempts, and
/// removes them from their pools' dead-letter queues. A dead workflow step (or map run) runs
/// again through its workflow's retry (`identity` is the admin), which reopens the workflow
/// and runs every step of it that did not succeed; one whose workflow is still running (or
/// was cancelled with steps still live) stays dead (when `task_ids` named only such steps,
/// the retry's 409 says why). Returns how many of the selected jobs ran again.
pub async fn replay_dead(
    state: &AppState,
    identity: &Identity,
    selection: &DeadSelection,
) -> Result<u64, TaskError> {
    let mut tx = state.pool.begin().await?;
    let tasks = select_dead(&mut tx, selection).await?;
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let steps: HashMap<Uuid, Uuid> = store::workflows::of_each(&mut tx, &ids)
        .await?
        .into_iter()
        .collect();
    let mut pools = HashSet::new();
    let mut audience = Vec::new();
    let mut replayed = 0;
    for mut task in tasks.into_iter().filter(|t| !steps.contains_key(&t.id)) {
        let pool = store::dead::reset_for_replay(&mut tx, task.id).await?;
        state.pools.ensure(&pool).await?;
        pools.insert(pool);
        store::jobs::set_status(&mut tx, &mut task, Status::Queued).await?;
        crate::service::limits::dispatch_first(&mut tx, &task).await?;
        audience.extend(crate::store::tasks::audience(&mut tx, &task).await?);
        replayed += 1;
    }
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    for pool in pools {
        prune_dead_letters(state, &pool).await;
    }
    let mut workflows: Vec<Uuid> = steps.values().copied().collect();
    workflows.sort_unstable();
    workflows.dedup();
    let mut refused = None;
    for workflow in workflows {
        let id = workflow.to_string();
        match crate::service::workflows::control::reopen(state, identity, &id).await {
            Ok(()) => replayed += steps.values().filter(|w| **w == workflow).count() as u64,
            // Still running (or its cancel left steps live): its dead steps stay dead.
            Err(err @ TaskError::Conflict { .. }) => {
                tracing::info!(workflow_id = %workflow, error = %err, "a dead step's workflow was not retried: the step stays dead");
                refused.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    // Jobs named by id of which none ran again: why, rather than a count of none.
    if let (0, Some(_), Some(err)) = (replayed, &selection.task_ids, refused) {
        return Err(err);
    }
    tracing::info!(count = replayed, "replayed dead jobs");
    Ok(replayed)
}

/// Takes the dead jobs `selection` names off the dead list and out of their pools' dead-letter
/// queues (the tasks stay, dead). Returns how many.
pub async fn purge_dead(state: &AppState, selection: &DeadSelection) -> Result<u64, TaskError> {
    let mut tx = state.pool.begin().await?;
    let tasks = select_dead(&mut tx, selection).await?;
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let pools = store::dead::mark_purged(&mut tx, &ids).await?;
    tx.commit().await?;
    for pool in pools {
        prune_dead_letters(state, &pool).await;
    }
    Ok(ids.len() as u64)
}

/// Locks the dead, unpurged jobs `selection` names (at most 1000).
async fn select_dead(
    tx: &mut PgConnection,
    selection: &DeadSelection,
) -> Result<Vec<Task>, sqlx::Error> {
    store::dead::select_dead(tx, selection.pool.as_deref(), selection.task_ids.as_deref()).await
}
