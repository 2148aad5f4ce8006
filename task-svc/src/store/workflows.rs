//! The `workflows` and `workflow_steps` tables, and the workflow columns of `jobs`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{types::Json, PgConnection};
use uuid::Uuid;

use crate::domain::{status::Status, workflow::WorkflowStatus};

pub use crate::domain::workflow_view::Workflow as WorkflowRow;

const COLUMNS: &str =
    "id, owner_id, title, status, max_parallel, created_at, updated_at, finished_at";

/// A need as stored: `[{"step", "on_failure"}]`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NeedRow {
    pub step: String,
    pub on_failure: crate::domain::workflow::OnFailure,
}

/// A step with its task's status and its job's outcome.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub step: String,
    pub task_id: Uuid,
    pub needs: Json<Vec<NeedRow>>,
    pub skipped: bool,
    pub status: Status,
    pub result: Option<Value>,
    pub last_error: Option<String>,
    pub attempt: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Writes a new workflow, `running`.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    title: &str,
    max_parallel: Option<i32>,
) -> Result<WorkflowRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO workflows (id, owner_id, title, max_parallel) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(owner)
    .bind(title)
    .bind(max_parallel)
    .fetch_one(conn)
    .await
}

/// Writes workflow `id`'s steps (ids, tasks and needs, in the order sent) and marks their jobs.
pub async fn insert_steps(
    conn: &mut PgConnection,
    id: Uuid,
    steps: &[String],
    tasks: &[Uuid],
    needs: &[Json<Vec<NeedRow>>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH s AS (
            INSERT INTO workflow_steps (workflow_id, step, position, task_id, needs)
            SELECT $1, step, position - 1, task_id, needs
              FROM unnest($2::text[], $3::uuid[], $4::jsonb[]) WITH ORDINALITY
                   AS u (step, task_id, needs, position)
            RETURNING step, task_id, needs
         )
         UPDATE jobs j
            SET workflow_id = $1, step = s.step,
                inputs = CASE WHEN s.needs = '[]'::jsonb THEN '{}'::jsonb END
           FROM s WHERE j.task_id = s.task_id",
    )
    .bind(id)
    .bind(steps)
    .bind(tasks)
    .bind(needs)
    .execute(conn)
    .await?;
    Ok(())
}

/// The workflows the jobs of `tasks` belong to.
pub async fn of_tasks(conn: &mut PgConnection, tasks: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT workflow_id FROM jobs
          WHERE task_id = ANY($1) AND workflow_id IS NOT NULL",
    )
    .bind(tasks)
    .fetch_all(conn)
    .await
}

/// Workflow `id`, locked for the transaction when `lock` (advancing or changing it).
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<WorkflowRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM workflows WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Workflow `id`'s steps in the order sent, with their tasks' statuses and their jobs' outcomes.
pub async fn steps(conn: &mut PgConnection, id: Uuid) -> Result<Vec<StepRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.step, s.task_id, s.needs, s.skipped, t.status, j.result, j.last_error,
                j.attempt, j.started_at, j.finished_at
           FROM workflow_steps s
           JOIN tasks t ON t.id = s.task_id
           JOIN jobs j ON j.task_id = s.task_id
          WHERE s.workflow_id = $1
          ORDER BY s.position",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Marks the steps of `tasks` skipped.
pub async fn mark_skipped(conn: &mut PgConnection, tasks: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workflow_steps SET skipped = true WHERE task_id = ANY($1)")
        .bind(tasks)
        .execute(conn)
        .await?;
    Ok(())
}

/// The inputs task `task_id`'s dispatches hand to its worker.
pub async fn set_inputs(
    conn: &mut PgConnection,
    task_id: Uuid,
    inputs: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET inputs = $2 WHERE task_id = $1")
        .bind(task_id)
        .bind(inputs)
        .execute(conn)
        .await?;
    Ok(())
}

/// Workflow `id` moves to `status` (its end, when not `running`).
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: WorkflowStatus,
) -> Result<WorkflowRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE workflows
            SET status = $2, updated_at = now(),
                finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status)
    .fetch_one(conn)
    .await
}

/// `owner`'s workflows (everyone's for `None`), newest first, in `status` if given, older than
/// `before` if given, at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    owner: Option<Uuid>,
    status: Option<WorkflowStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<WorkflowRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM workflows
          WHERE ($1::uuid IS NULL OR owner_id = $1) AND ($2::text IS NULL OR status = $2)
            AND ($3::uuid IS NULL OR id < $3)
          ORDER BY id DESC LIMIT $4"
    ))
    .bind(owner)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
