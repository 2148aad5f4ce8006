//! A task's job: written with its task, and handed to its pool (a dispatch).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use shared::{identity::Identity, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::task::Task,
    domain::{
        events::{assigned_event, dispatch_event},
        job::{Attempt, JobView, ParsedJob},
    },
    error::TaskError,
    service::limits::Admission,
    store, AppState,
};

/// Outcome of writing a new job.
pub enum Inserted {
    /// Written; these events (its first dispatch and `task.assigned`, unless it waits for a
    /// cron tick) go to the outbox with the caller's.
    Created(Box<JobView>, Vec<outbox::Pending>),
    /// A live job with the same `unique_key` exists: this one.
    Duplicate(Uuid),
}

/// Writes the job of the just-inserted `task` and prepares its first dispatch. Inside the
/// caller's transaction; the caller writes the returned events.
pub async fn insert(
    tx: &mut PgConnection,
    task: &Task,
    job: &ParsedJob,
    parent: Option<(Uuid, DateTime<Utc>)>,
) -> Result<Inserted, TaskError> {
    let mut inserted = insert_many(tx, &[(task, job)], parent).await?;
    Ok(inserted.pop().expect("one result per job"))
}

/// [`insert`] for several tasks in one statement (a bulk creation), results in their order.
pub async fn insert_many(
    tx: &mut PgConnection,
    items: &[(&Task, &ParsedJob)],
    parent: Option<(Uuid, DateTime<Utc>)>,
) -> Result<Vec<Inserted>, TaskError> {
    struct Row {
        next_run_at: Option<DateTime<Utc>>,
        attempt: i32,
        first: Option<(Uuid, outbox::Pending)>,
        admission: Admission,
    }
    let admissions = crate::service::limits::reserve(tx, items).await?;
    let mut rows = Vec::with_capacity(items.len());
    for ((task, job), admission) in items.iter().zip(admissions) {
        let next_run_at = job
            .cron
            .as_ref()
            .and_then(|(_, schedule)| schedule.upcoming(Utc).next());
        // The first dispatch is written with the job (its ids are known before), so a new job
        // costs one row here and its events.
        let first = match (job.cron.as_ref(), admission) {
            (Some(_), _) | (_, Admission::Waits) => None,
            _ if job.held => None,
            (None, Admission::Admitted(at)) => Some(dispatch_event(task, job, 1, at)?),
            (None, Admission::Unlimited) => {
                let at = job.run_at.filter(|at| *at > Utc::now());
                Some(dispatch_event(task, job, 1, at)?)
            }
        };
        rows.push(Row {
            next_run_at,
            attempt: i32::from(first.is_some()),
            first,
            admission,
        });
    }
    let new: Vec<store::job_inserts::NewJob> = items
        .iter()
        .zip(&rows)
        .map(|((task, job), row)| store::job_inserts::NewJob {
            task,
            job,
            next_run_at: row.next_run_at,
            attempt: row.attempt,
            dispatch: row
                .first
                .as_ref()
                .map(|(id, pending)| (*id, pending.event.id)),
            limit_state: row.admission.state(),
        })
        .collect();
    let inserted = store::job_inserts::insert_many(tx, &new, parent).await?;
    // A key whose older jobs wait took the new ones in line behind them; room may have freed
    // since they were last admitted.
    let waiting: Vec<(Uuid, String)> = items
        .iter()
        .zip(&rows)
        .filter(|(_, row)| row.admission == Admission::Waits)
        .filter_map(|((task, job), _)| Some((task.owner_id, job.limit.as_ref()?.key.clone())))
        .collect();
    if !waiting.is_empty() {
        crate::service::limits::admit(tx, waiting, false).await?;
    }
    // Refused rows: a live job with the same key (maybe one earlier in this batch), or a cron
    // tick that has run already.
    let refused: Vec<(Uuid, String)> = items
        .iter()
        .filter(|(t, _)| !inserted.contains(&t.id))
        .filter_map(|(t, j)| Some((t.owner_id, j.unique_key.clone()?)))
        .collect();
    let existing: HashMap<(Uuid, String), Uuid> = if refused.is_empty() {
        HashMap::new()
    } else {
        store::job_inserts::live_by_keys(tx, &refused).await?
    };
    let mut results = Vec::with_capacity(items.len());
    for ((task, job), row) in items.iter().zip(rows) {
        if !inserted.contains(&task.id) {
            let key = (task.owner_id, job.unique_key.clone().unwrap_or_default());
            results.push(match existing.get(&key) {
                Some(id) => Inserted::Duplicate(*id),
                None => {
                    return Err(TaskError::conflict(
                        "duplicate_run",
                        "this cron tick has run already",
                    ))
                }
            });
            continue;
        }
        let mut events = Vec::new();
        if let Some((_, pending)) = row.first {
            events.push(pending);
            events.push(assigned_event(task, &job.pool)?);
        }
        let view = JobView {
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            pool: job.pool.clone(),
            run_at: job.run_at,
            cron: job.cron.as_ref().map(|(text, _)| text.clone()),
            next_run_at: row.next_run_at,
            parent_id: parent.map(|p| p.0),
            scheduled_for: parent.map(|p| p.1),
            max_attempts: job.max_attempts,
            backoff_base_ms: job.backoff_base_ms,
            backoff_max_ms: job.backoff_max_ms,
            timeout_ms: job.timeout_ms,
            unique_key: job.unique_key.clone(),
            attempt: row.attempt,
            progress: None,
            result: None,
            last_error: None,
            started_at: None,
            finished_at: None,
            limit: job.limit.clone(),
            limit_state: row.admission.state().map(String::from),
            limit_since: (row.admission == Admission::Waits).then(Utc::now),
        };
        results.push(Inserted::Created(Box::new(view), events));
    }
    Ok(results)
}

/// Every run of task `id`'s job, oldest first, if `identity` may see the task.
pub async fn attempts(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<Vec<Attempt>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let task = crate::service::tasks::visible_task(&mut conn, identity, id).await?;
    Ok(store::runs::list(&mut conn, task.id).await?)
}
