//! What workers' reports write: runs in `job_attempts`, and the run state of `jobs` (and, for
//! successes, their tasks).

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::events::{JobFinished, JobProgress, JobStarted};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::task::Task;

/// Records that a run started (once: a redelivered report keeps the first start).
pub async fn record_start(conn: &mut PgConnection, report: &JobStarted) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_attempts (run_id, task_id, dispatch_id, attempt, worker_id, started_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (run_id) DO UPDATE
            SET started_at = COALESCE(job_attempts.started_at, EXCLUDED.started_at)",
    )
    .bind(report.run_id)
    .bind(report.task_id)
    .bind(report.dispatch_id)
    .bind(report.attempt)
    .bind(&report.worker_id)
    .bind(report.started_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks lost the other open runs of the dispatch that `report`'s run started (their worker
/// died and the broker handed the job on). Returns how many.
pub async fn mark_others_lost(
    conn: &mut PgConnection,
    report: &JobStarted,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE job_attempts
            SET outcome = 'lost', ended_at = $3,
                error = 'the worker stopped before finishing; the broker handed the job to another run'
          WHERE task_id = $4 AND dispatch_id = $1 AND run_id <> $2 AND outcome = 'running'",
    )
    .bind(report.dispatch_id)
    .bind(report.run_id)
    .bind(report.started_at)
    .bind(report.task_id)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A run's latest progress, while it is open.
pub async fn set_run_progress(
    conn: &mut PgConnection,
    run_id: Uuid,
    progress: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE job_attempts SET progress = $2 WHERE run_id = $1 AND ended_at IS NULL")
        .bind(run_id)
        .bind(progress)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records how a run ended (`error` already cut to length), unless it ended already. A
/// dispatch `skipped` because its task was cancelled never ran: nothing is recorded for it
/// unless its run was.
pub async fn record_end(
    conn: &mut PgConnection,
    report: &JobFinished,
    error: Option<&str>,
    skipped: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_attempts (run_id, task_id, dispatch_id, attempt, worker_id, started_at,
                                   ended_at, outcome, error)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
          WHERE NOT $10 OR EXISTS (SELECT 1 FROM job_attempts WHERE run_id = $1)
         ON CONFLICT (run_id) DO UPDATE
            SET ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error
          WHERE job_attempts.outcome IN ('running', 'lost')",
    )
    .bind(report.run_id)
    .bind(report.task_id)
    .bind(report.dispatch_id)
    .bind(report.attempt)
    .bind(&report.worker_id)
    .bind(report.started_at)
    .bind(report.ended_at)
    .bind(report.outcome.as_str())
    .bind(error)
    .bind(skipped)
    .execute(conn)
    .await?;
    Ok(())
}

/// A task [`complete_many`] completed, with its job's kind, workflow and limit key.
#[derive(sqlx::FromRow)]
pub struct Completion {
    #[sqlx(flatten)]
    pub task: Task,
    pub job_kind: String,
    pub job_workflow: Option<Uuid>,
    pub job_limit: Option<String>,
}

/// Records successful runs and completes their tasks (only a live task whose current dispatch
/// it is), in one statement. Returns each completed task with its job's kind, workflow and
/// limit key.
///
/// Idempotent: a run is recorded once (its id is unique and a finished run is not
/// overwritten), and a task completes only from a live status, so a duplicate report changes
/// nothing.
pub async fn complete_many(
    tx: &mut PgConnection,
    reports: &[JobFinished],
) -> Result<Vec<Completion>, sqlx::Error> {
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: fn(&JobFinished) -> Uuid| reports.iter().map(f).collect::<Vec<Uuid>>();
    sqlx::query_as(&format!(
        "WITH r AS MATERIALIZED (
            -- Each report with its job, looked up by key (LIMIT 1 keeps it a lookup per report:
            -- a join here gets hashed over the whole table while its statistics still call it
            -- small, as they do for minutes after a burst on a new deployment). A report whose
            -- task is gone has no job and is dropped.
            SELECT r.*, j.kind AS job_kind, j.dispatch_id AS current_dispatch,
                   j.workflow_id AS job_workflow, j.limit_key AS job_limit
              FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int4[],
                          $6::timestamptz[], $7::timestamptz[], $8::jsonb[])
                   AS r(task_id, dispatch_id, run_id, worker_id, attempt, started_at, ended_at,
                        result)
              CROSS JOIN LATERAL (SELECT kind, dispatch_id, workflow_id, limit_key FROM jobs
                                   WHERE jobs.task_id = r.task_id LIMIT 1) j
         ), runs AS (
            INSERT INTO job_attempts (run_id, task_id, dispatch_id, attempt, worker_id, started_at,
                                      ended_at, outcome)
            SELECT run_id, task_id, dispatch_id, attempt, worker_id, started_at, ended_at,
                   'succeeded'
              FROM r
            ON CONFLICT (run_id) DO UPDATE
               SET ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome, error = NULL
             WHERE job_attempts.outcome IN ('running', 'lost')
         ), lost AS (
            -- Another run of the same dispatch still open is one whose worker died: a quick
            -- rerun reports no start, so it is marked here, as a reported start would.
            UPDATE job_attempts a
               SET outcome = 'lost', ended_at = r.started_at,
                   error = 'the worker stopped before finishing; the broker handed the job to another run'
              FROM r
             WHERE a.task_id = r.task_id AND a.dispatch_id = r.dispatch_id
               AND a.run_id <> r.run_id AND a.outcome = 'running'
         ), done AS (
            UPDATE tasks t SET status = 'completed', version = t.version + 1, updated_at = now()
              FROM r
             WHERE t.id = r.task_id AND r.dispatch_id = r.current_dispatch
               AND t.status IN ('pending', 'scheduled', 'queued', 'running', 'retrying')
            RETURNING t.*, r.job_kind, r.job_workflow, r.job_limit, r.result AS run_result,
                      r.started_at AS run_started_at, r.ended_at AS run_ended_at
         ), finished AS (
            UPDATE jobs j
               SET result = done.run_result, finished_at = done.run_ended_at, last_error = NULL,
                   unique_lock = NULL, started_at = COALESCE(j.started_at, done.run_started_at),
                   limit_state = NULL
              FROM done WHERE j.task_id = done.id
         ), released AS (
            -- A limited job cancelled while a worker held it kept its key's place until now.
            UPDATE jobs j SET limit_state = NULL
              FROM r
             WHERE r.job_limit IS NOT NULL AND j.task_id = r.task_id
               AND r.dispatch_id = r.current_dispatch AND j.finished_at IS NOT NULL
               AND j.limit_state = 'admitted'
         )
         SELECT {}, job_kind, job_workflow, job_limit FROM done",
        crate::store::tasks::COLUMNS
    ))
    .bind(column(|r| r.task_id))
    .bind(column(|r| r.dispatch_id))
    .bind(column(|r| r.run_id))
    .bind(
        reports
            .iter()
            .map(|r| r.worker_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(reports.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.ended_at).collect::<Vec<_>>())
    .bind(
        reports
            .iter()
            .map(|r| r.result.clone().unwrap_or(Value::Null))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await
}

/// The job's current run is `run_id` (and `lost` more of its runs were lost); it has started.
pub async fn start_run(
    conn: &mut PgConnection,
    task_id: Uuid,
    run_id: Uuid,
    lost: i32,
    started_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET current_run = $2, lost_runs = lost_runs + $3,
                         started_at = COALESCE(started_at, $4), progress = NULL
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(run_id)
    .bind(lost)
    .bind(started_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The job's progress, if `report` is from its current run and newer than what it shows.
pub async fn set_job_progress(
    conn: &mut PgConnection,
    report: &JobProgress,
    progress: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET progress = $3, progress_seq = $4
          WHERE task_id = $1 AND dispatch_id = $2 AND current_run IS NOT DISTINCT FROM $5
            AND progress_seq < $4",
    )
    .bind(report.task_id)
    .bind(report.dispatch_id)
    .bind(progress)
    .bind(report.seq)
    .bind(report.run_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A job already ended (cancelled) whose current dispatch's run has now ended too: it gives up
/// its key's place.
pub async fn release_place(
    conn: &mut PgConnection,
    task_id: Uuid,
    dispatch_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET limit_state = NULL
          WHERE task_id = $1 AND dispatch_id = $2 AND limit_state = 'admitted'
            AND finished_at IS NOT NULL",
    )
    .bind(task_id)
    .bind(dispatch_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The job has no current run (handed back to its queue).
pub async fn clear_run(conn: &mut PgConnection, task_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET current_run = NULL WHERE task_id = $1")
        .bind(task_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A run skipped or stopped because its task was cancelled: the job is finished.
pub async fn finish_cancelled(
    conn: &mut PgConnection,
    task_id: Uuid,
    ended_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET finished_at = $2, unique_lock = NULL, current_run = NULL,
                         limit_state = NULL
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(ended_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A failed run: its error is the job's last, and it has no current run.
pub async fn record_failure(
    conn: &mut PgConnection,
    task_id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET last_error = $2, current_run = NULL WHERE task_id = $1")
        .bind(task_id)
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}

/// The job is dead with `error`: finished, its unique key free, on the dead list.
pub async fn mark_dead(
    conn: &mut PgConnection,
    task_id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET finished_at = now(), unique_lock = NULL, dead_purged_at = NULL,
                         last_error = $2, limit_state = NULL
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}
