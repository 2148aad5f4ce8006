//! `job_attempts`: every run of a job.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{job::Attempt, pool::Minute};

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
