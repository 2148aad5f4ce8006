//! `job_attempts`: every run of a job.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::job::Attempt;

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
