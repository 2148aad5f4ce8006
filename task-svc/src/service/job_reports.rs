//! Workers' reports applied to tasks: a run started, progressed or finished, and what follows
//! (completion, a retry after the backoff, the dead-letter queue).

use std::collections::HashMap;

use chrono::Utc;
use shared::{
    config::JobsConfig,
    events::{JobFinished, JobOutcome, JobProgress, JobStarted},
    outbox::{self},
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::events,
    domain::job::backoff,
    domain::status::Status,
    domain::task::Task,
    error::TaskError,
    service::dispatch::dispatch,
    store::{
        jobs::{lock, set_status, Locked},
        reports,
    },
};

/// Records the run; marks other open runs of the dispatch lost (their worker died and the broker
/// redelivered); the task becomes `running`. Returns the task if its status changed.
pub async fn on_started(
    tx: &mut PgConnection,
    report: JobStarted,
    config: &JobsConfig,
) -> Result<Option<Task>, sqlx::Error> {
    let Some((mut task, job)) = lock(tx, report.task_id).await? else {
        return Ok(None);
    };
    reports::record_start(tx, &report).await?;
    if job.dispatch_id != Some(report.dispatch_id) {
        return Ok(None);
    }
    let lost = reports::mark_others_lost(tx, &report).await?;
    reports::start_run(tx, task.id, report.run_id, lost as i32, report.started_at).await?;
    if lost > 0 {
        tracing::warn!(task_id = %task.id, lost, previous_lost = job.lost_runs, "a run of this job was lost with its worker");
        let lost_runs = job.lost_runs + lost as i32;
        if lost_runs >= config.max_lost_runs as i32 && task.status.is_live_job() {
            // Its workers keep dying while running it: most likely the job kills them. Stop
            // the current run and dead-letter it rather than rerun it without end.
            let error = format!(
                "its runs were lost with their workers {lost_runs} times; it may be what stops them"
            );
            bury(tx, &mut task, &job, &error).await?;
            outbox::enqueue_all(tx, vec![events::job_cancel(task.id, job.dispatch_id)?]).await?;
            return Ok(Some(task));
        }
    }
    if task.status.awaits_start() {
        set_status(tx, &mut task, Status::Running).await?;
        return Ok(Some(task));
    }
    Ok(None)
}

pub async fn on_progress(
    tx: &mut PgConnection,
    report: JobProgress,
) -> Result<Option<Task>, sqlx::Error> {
    let progress = serde_json::json!({ "percent": report.percent, "message": report.message });
    reports::set_job_progress(tx, &report, &progress).await?;
    reports::set_run_progress(tx, report.run_id, &progress).await?;
    Ok(None)
}

/// Records how the run ended and moves the job on: completed, retrying (a new dispatch after
/// the backoff), dead (the pool's dead-letter queue), cancelled, or queued again (handed back).
pub async fn on_finished(
    tx: &mut PgConnection,
    report: JobFinished,
    config: &JobsConfig,
) -> Result<Option<Task>, sqlx::Error> {
    let Some((mut task, job)) = lock(tx, report.task_id).await? else {
        return Ok(None);
    };
    let error: Option<String> = report
        .error
        .as_ref()
        .map(|e| e.chars().take(4000).collect());
    // A dispatch skipped because its task was cancelled never ran: no attempt to record.
    let skipped = report.outcome == JobOutcome::Cancelled;
    reports::record_end(tx, &report, error.as_deref(), skipped).await?;
    let current = job.dispatch_id == Some(report.dispatch_id);
    let live = task.status.is_live_job();
    if current && !live && report.outcome != JobOutcome::Interrupted {
        // Cancelled while a worker held it: the run is over now (the sweep admits the next).
        reports::release_place(tx, task.id, report.dispatch_id).await?;
    }
    if !current || !live {
        return Ok(None);
    }
    // Another run took over this dispatch (this one was presumed lost): only a success still
    // counts; a failure of the old run must not retry what the new run is doing.
    let this_run = job.current_run.is_none() || job.current_run == Some(report.run_id);
    match report.outcome {
        // Never reached from the queue (successes go to `complete_many` together); kept on
        // the one rule all the same.
        JobOutcome::Succeeded => return Ok(complete_many(tx, vec![(report, None)]).await?.0.pop()),
        JobOutcome::Interrupted if this_run => {
            // The worker shut down and requeued the dispatch: it runs again, same attempt.
            reports::clear_run(tx, task.id).await?;
            set_status(tx, &mut task, Status::Queued).await?;
        }
        JobOutcome::Cancelled if this_run => {
            reports::finish_cancelled(tx, task.id, report.ended_at).await?;
            set_status(tx, &mut task, Status::Cancelled).await?;
        }
        JobOutcome::Failed | JobOutcome::TimedOut if this_run => {
            let error = error.unwrap_or_else(|| report.outcome.as_str().to_string());
            fail(tx, &mut task, &job, &error, report.retryable, config).await?;
        }
        _ => return Ok(None),
    }
    Ok(Some(task))
}

/// A failed attempt: retry after the backoff, or dead-letter when attempts are used up (or
/// retrying cannot help).
async fn fail(
    tx: &mut PgConnection,
    task: &mut Task,
    job: &Locked,
    error: &str,
    retryable: bool,
    _config: &JobsConfig,
) -> Result<(), sqlx::Error> {
    reports::record_failure(tx, task.id, error).await?;
    if retryable && job.attempt < job.max_attempts {
        let retry_at = Utc::now() + backoff(job.backoff_base_ms, job.backoff_max_ms, job.attempt);
        // A retry is a start: paced by its key's per_second like any other.
        let retry_at = match &job.limit_key {
            Some(key) => {
                crate::service::limits::pace_retry(tx, task.owner_id, key, retry_at).await?
            }
            None => retry_at,
        };
        set_status(tx, task, Status::Retrying).await?;
        dispatch(tx, task, job.attempt + 1, Some(retry_at), false).await?;
        let failed = events::failed(
            task,
            (&job.kind, &job.pool),
            (job.attempt, job.max_attempts),
            error,
            retry_at,
        )?;
        outbox::enqueue_all(tx, vec![failed]).await?;
        return Ok(());
    }
    bury(tx, task, job, error).await
}

/// The job is dead: the task says so, `task.dead` is published, and a copy goes to the pool's
/// dead-letter queue (`<ns>.jobs.<pool>.dlq`) for the console and for replay.
async fn bury(
    tx: &mut PgConnection,
    task: &mut Task,
    job: &Locked,
    error: &str,
) -> Result<(), sqlx::Error> {
    reports::mark_dead(tx, task.id, error).await?;
    set_status(tx, task, Status::Dead).await?;
    let dead = events::dead(task, (&job.kind, &job.pool), job.attempt, error)?;
    outbox::enqueue_all(tx, dead).await?;
    Ok(())
}

/// Applies successful `job.finished` reports together (with their trace contexts): the one rule
/// that completes a job. Records their runs, completes their tasks (only a live task whose
/// current dispatch it is) and announces `task.completed`. Returns the completed tasks, the
/// workflows of those that are workflow steps and the limit keys of those that have one.
///
/// Idempotent without a processed-events record: a duplicate report changes nothing and
/// announces nothing.
pub async fn complete_many(
    tx: &mut PgConnection,
    reports: Vec<(JobFinished, Option<String>)>,
) -> Result<(Vec<Task>, Vec<Uuid>, Vec<(Uuid, String)>), sqlx::Error> {
    let traces: HashMap<Uuid, Option<String>> = reports
        .iter()
        .map(|(r, traceparent)| (r.task_id, traceparent.clone()))
        .collect();
    let reports: Vec<JobFinished> = reports.into_iter().map(|(r, _)| r).collect();
    let done = crate::store::reports::complete_many(tx, &reports).await?;
    if done.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let events = done
        .iter()
        .map(|d| {
            let traceparent = traces.get(&d.task.id).cloned().flatten();
            events::completed_by_job(&d.task, &d.job_kind, traceparent)
        })
        .collect();
    outbox::enqueue_many(tx, events).await?;
    let workflows = done.iter().filter_map(|d| d.job_workflow).collect();
    let keys = done
        .iter()
        .filter_map(|d| Some((d.task.owner_id, d.job_limit.clone()?)))
        .collect();
    Ok((done.into_iter().map(|d| d.task).collect(), workflows, keys))
}

/// Marks the dispatches that `finished` reports ended where workers look before running a copy
/// (every outcome but `interrupted`, whose dispatch is handed back to run again), before the
/// reports are acked: a run that reported is over whether or not their transaction commits,
/// and a report redelivered because task-svc stopped before its ack marks again. A success
/// is marked whichever run of the dispatch it came from; any other end only when it was the
/// dispatch's current run (the caller knows).
pub async fn mark_finished(
    cache: &crate::infra::list_cache::ListCache,
    finished: &[(Uuid, JobOutcome)],
) {
    let done: Vec<(Uuid, &str)> = finished
        .iter()
        .filter(|(_, outcome)| *outcome != JobOutcome::Interrupted)
        .map(|(dispatch_id, outcome)| (*dispatch_id, outcome.as_str()))
        .collect();
    crate::infra::dispatch_marks::mark_done(&cache.redis, &cache.prefix, &done).await;
}

/// Commits `tx`, then invalidates the cached lists that show the `touched` tasks.
pub async fn commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    touched: &[Task],
    cache: &crate::infra::list_cache::ListCache,
) -> Result<(), TaskError> {
    let touched: Vec<&Task> = touched.iter().collect();
    let audience = crate::store::tasks::audience_many(&mut tx, &touched).await?;
    tx.commit().await?;
    cache.invalidate(&audience).await;
    Ok(())
}
