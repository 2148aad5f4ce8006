//! What operators do to jobs beside the dead-letter calls: find jobs by kind, state, pool and
//! payload content (admins), and run a waiting job now instead of at its backoff or its
//! `run_at` (whoever may cancel it).

use serde_json::Value;
use shared::{
    identity::Identity,
    paging::{next_after, Limit},
};
use uuid::Uuid;

use crate::{
    domain::{
        job::{JobQuery, JobSummary},
        status::parse_job_state,
        task::Task,
    },
    error::TaskError,
    store, AppState,
};

/// A page of an operator's job search: 50 unless asked, at most 200 (more is clamped).
const JOB_PAGE: Limit = Limit::new(50, 200);

/// Longest `payload` filter, in bytes.
const MAX_FILTER_BYTES: usize = 1024;

fn check_length(name: &str, value: &Option<String>, max: usize) -> Result<(), TaskError> {
    match value {
        Some(v) if v.len() > max => Err(TaskError::invalid(
            "invalid_filter",
            format!("{name} is longer than {max} bytes"),
        )),
        _ => Ok(()),
    }
}

/// The jobs matching every filter of `query`, newest first, and the `before` of the next page.
pub async fn search(
    state: &AppState,
    query: &JobQuery,
) -> Result<(Vec<JobSummary>, Option<Uuid>), TaskError> {
    check_length("kind", &query.kind, 100)?;
    check_length("pool", &query.pool, 100)?;
    check_length("payload", &query.payload, MAX_FILTER_BYTES)?;
    let job_state = query.state.as_deref().map(parse_job_state).transpose()?;
    let payload: Option<Value> = match &query.payload {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => Some(value),
            _ => {
                return Err(TaskError::invalid(
                    "invalid_filter",
                    "payload must be a JSON object, such as {\"url\":\"https://example.com\"}",
                ))
            }
        },
    };
    let limit = JOB_PAGE.clamp(query.limit);
    let mut items =
        store::jobs::search(&state.pool, query, job_state, payload.as_ref(), limit + 1).await?;
    let next_before = next_after(&mut items, limit, |job| job.task_id);
    Ok((items, next_before))
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
