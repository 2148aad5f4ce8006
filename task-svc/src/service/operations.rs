//! What operators do to jobs beside the dead-letter calls: find jobs by kind, state, pool and
//! payload content (admins), and run a waiting job now instead of at its backoff or its
//! `run_at` (whoever may cancel it).

use shared::{
    identity::Identity,
    paging::{next_after, Limit},
};

use crate::{
    domain::{
        job_search::{JobPage, JobQuery, StateCounts},
        task::Task,
    },
    error::TaskError,
    store, AppState,
};

/// A page of an operator's job search: 50 unless asked, at most 200 (more is clamped).
const JOB_PAGE: Limit = Limit::new(50, 200);

/// The jobs matching every filter of `query`, in its order, and the cursor of the next page.
pub async fn search(state: &AppState, query: &JobQuery) -> Result<JobPage, TaskError> {
    let filter = query.filter()?;
    let limit = JOB_PAGE.clamp(query.limit);
    let mut items = store::job_search::search(&state.pool, &filter, limit + 1).await?;
    let next = next_after(&mut items, limit, |job| job.task_id);
    let (next_before, next_after) = match filter.oldest_first {
        true => (None, next),
        false => (next, None),
    };
    Ok(JobPage {
        items,
        next_before,
        next_after,
    })
}

/// How many jobs `query`'s filters (its state and cursor aside) select in each state.
pub async fn counts(state: &AppState, query: &JobQuery) -> Result<StateCounts, TaskError> {
    let filter = query.filter()?;
    let rows = store::job_search::counts(&state.pool, &filter).await?;
    Ok(StateCounts::from_rows(rows))
}

/// Task `id`, locked, if the caller may act on its job as its creator, its channel's owner or
/// an admin; 404 if they cannot see it, 403 (naming `action`) if they only can see it.
pub async fn editable_job(
    tx: &mut sqlx::PgConnection,
    identity: &Identity,
    id: &str,
    action: &str,
) -> Result<Task, TaskError> {
    let (task, editable) = crate::service::tasks::visible_for_edit(tx, identity, id).await?;
    if !editable {
        return Err(TaskError::Forbidden(format!(
            "only the task's creator, its channel's owner or an admin can {action}"
        )));
    }
    Ok(task)
}

/// Hands task `id`'s waiting job (retrying, or scheduled for later) to its pool now, for
/// whoever may cancel it. The task is as it was until a worker takes it.
pub async fn retry_now(state: &AppState, identity: &Identity, id: &str) -> Result<Task, TaskError> {
    let mut tx = state.pool.begin().await?;
    let task = editable_job(&mut tx, identity, id, "run it now").await?;
    // A waiting dispatch is an outbox row not yet published; bringing it forward is all it
    // takes (the job's attempt, idempotency key and everything else stay as they are).
    if !store::jobs::bring_forward(&mut tx, task.id).await? {
        return Err(TaskError::conflict(
            "not_waiting",
            "only a job waiting for its next attempt or its scheduled time can run now",
        ));
    }
    tx.commit().await?;
    tracing::info!("job handed to its pool now");
    Ok(task)
}
