//! `job_attempts`: every run of a job.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{
    job::Attempt,
    pool::{Minute, PoolWindow, WorkerRun},
};

/// Every run of task `task_id`'s job, oldest first.
pub async fn list(conn: &mut PgConnection, task_id: Uuid) -> Result<Vec<Attempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, dispatch_id, attempt, worker_id, started_at, ended_at, outcome, error,
                progress
           FROM job_attempts WHERE task_id = $1
          ORDER BY started_at NULLS LAST, ended_at NULLS LAST, run_id",
    )
    .bind(task_id)
    .fetch_all(conn)
    .await
}

/// The runs that ended in each of the last `minutes` minutes, oldest first.
pub async fn activity(pool: &PgPool, minutes: i32) -> Result<Vec<Minute>, sqlx::Error> {
    sqlx::query_as(
        "SELECT date_trunc('minute', ended_at) AS minute,
                count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE outcome IN ('failed', 'timed_out', 'lost')) AS failed,
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY extract(epoch FROM ended_at - started_at))::float8 AS p50_secs,
                percentile_cont(0.95) WITHIN GROUP
                    (ORDER BY extract(epoch FROM ended_at - started_at))::float8 AS p95_secs
           FROM job_attempts
          WHERE ended_at IS NOT NULL AND ended_at > now() - make_interval(mins => $1)
          GROUP BY 1 ORDER BY 1",
    )
    .bind(minutes)
    .fetch_all(pool)
    .await
}

/// Each pool's runs that ended in the last hour and the last day.
pub async fn throughput(pool: &PgPool) -> Result<Vec<PoolWindow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.pool, w.name AS window,
                count(*) FILTER (WHERE a.outcome = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE a.outcome IN ('failed', 'timed_out', 'lost')) AS failed,
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY extract(epoch FROM a.ended_at - a.started_at))::float8 AS p50_secs,
                percentile_cont(0.95) WITHIN GROUP
                    (ORDER BY extract(epoch FROM a.ended_at - a.started_at))::float8 AS p95_secs,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at
                    - greatest(t.created_at, coalesce(j.run_at, t.created_at))))
                    FILTER (WHERE a.attempt = 1)::float8 AS wait_p50_secs,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at
                    - greatest(t.created_at, coalesce(j.run_at, t.created_at))))
                    FILTER (WHERE a.attempt = 1)::float8 AS wait_p95_secs
           FROM (VALUES ('hour', interval '1 hour'), ('day', interval '1 day')) AS w (name, span)
           JOIN job_attempts a ON a.ended_at > now() - w.span
           JOIN jobs j ON j.task_id = a.task_id
           JOIN tasks t ON t.id = a.task_id
          WHERE a.started_at IS NOT NULL
          GROUP BY j.pool, w.name ORDER BY j.pool, w.name DESC",
    )
    .fetch_all(pool)
    .await
}

/// Worker `worker_id`'s runs still open (at most 200, oldest first), and those that ended in
/// the last day (the latest `recent`).
pub async fn of_worker(
    pool: &PgPool,
    worker_id: &str,
    recent: i64,
) -> Result<(Vec<WorkerRun>, Vec<WorkerRun>), sqlx::Error> {
    const RUN: &str = "SELECT a.run_id, a.task_id, t.title, j.kind, j.pool, a.attempt,
                              a.started_at, a.ended_at, a.outcome, a.error
                         FROM job_attempts a JOIN tasks t ON t.id = a.task_id
                         JOIN jobs j ON j.task_id = a.task_id";
    let open = sqlx::query_as(&format!(
        "{RUN} WHERE a.outcome = 'running' AND a.worker_id = $1
          ORDER BY a.started_at NULLS LAST LIMIT 200"
    ))
    .bind(worker_id)
    .fetch_all(pool)
    .await?;
    let ended = sqlx::query_as(&format!(
        "{RUN} WHERE a.ended_at > now() - interval '1 day' AND a.worker_id = $1
          ORDER BY a.ended_at DESC LIMIT $2"
    ))
    .bind(worker_id)
    .bind(recent)
    .fetch_all(pool)
    .await?;
    Ok((open, ended))
}
