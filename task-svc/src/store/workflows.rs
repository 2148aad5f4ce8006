//! The `workflows` and `workflow_steps` tables, and the workflow columns of `jobs`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{types::Json, PgConnection};
use uuid::Uuid;

use crate::domain::{
    status::Status,
    workflow::{MapSpec, WorkflowStatus},
};

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
    pub map: Option<Json<MapSpec>>,
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

/// Writes workflow `id`'s steps (ids, tasks, needs and maps, in the order sent) and marks their
/// jobs.
pub async fn insert_steps(
    conn: &mut PgConnection,
    id: Uuid,
    steps: &[String],
    tasks: &[Uuid],
    needs: &[Json<Vec<NeedRow>>],
    maps: &[Option<Json<MapSpec>>],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH s AS (
            INSERT INTO workflow_steps (workflow_id, step, position, task_id, needs, map)
            SELECT $1, step, position - 1, task_id, needs, map
              FROM unnest($2::text[], $3::uuid[], $4::jsonb[], $5::jsonb[]) WITH ORDINALITY
                   AS u (step, task_id, needs, map, position)
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
    .bind(maps)
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

/// Which of `tasks` belong to a workflow (steps and map runs): (task, workflow) pairs.
pub async fn of_each(
    conn: &mut PgConnection,
    tasks: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT task_id, workflow_id FROM jobs
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
        "SELECT s.step, s.task_id, s.needs, s.skipped, s.map, t.status, j.result, j.last_error,
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

/// Clears the outcome of the jobs of `tasks` (workflow steps run again by a retry) and their
/// steps' skips. Returns, per job, its pool if it was dead (its dead letter goes) and its
/// dispatch before.
pub async fn reset_steps(
    conn: &mut PgConnection,
    tasks: &[Uuid],
) -> Result<Vec<(Option<String>, Option<Uuid>)>, sqlx::Error> {
    sqlx::query("UPDATE workflow_steps SET skipped = false WHERE task_id = ANY($1)")
        .bind(tasks)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as(
        "WITH old AS (
            SELECT j.task_id, j.pool, j.dispatch_id, t.status
              FROM jobs j JOIN tasks t ON t.id = j.task_id
             WHERE j.task_id = ANY($1)
         )
         UPDATE jobs j
            SET attempt = 0, dispatch_id = NULL, dispatch_event = NULL, current_run = NULL,
                lost_runs = 0, progress = NULL, result = NULL, last_error = NULL,
                started_at = NULL, finished_at = NULL, limit_state = NULL, limit_since = NULL,
                dead_purged_at = CASE WHEN old.status = 'dead' THEN now() END
           FROM old
          WHERE j.task_id = old.task_id
         RETURNING CASE WHEN old.status = 'dead' THEN old.pool END, old.dispatch_id",
    )
    .bind(tasks)
    .fetch_all(conn)
    .await
}

/// Marks `tasks` as the runs of map step `step` of workflow `id`, one per element of `items`
/// in order, each handed `inputs`.
pub async fn mark_runs(
    conn: &mut PgConnection,
    id: Uuid,
    step: &str,
    tasks: &[Uuid],
    inputs: &Value,
    items: &[Value],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs j SET workflow_id = $1, step = $2, inputs = $3, item = u.item,
                item_index = u.position - 1
           FROM unnest($4::uuid[], $5::jsonb[]) WITH ORDINALITY AS u (task_id, item, position)
          WHERE j.task_id = u.task_id",
    )
    .bind(id)
    .bind(step)
    .bind(inputs)
    .bind(tasks)
    .bind(items)
    .execute(conn)
    .await?;
    Ok(())
}

/// Of each expanded map step of workflow `id`: its runs, how many ended, how many of those did
/// not succeed.
pub async fn map_runs(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.step, count(*),
                count(*) FILTER (WHERE t.status IN ('completed', 'dead', 'cancelled')),
                count(*) FILTER (WHERE t.status IN ('dead', 'cancelled'))
           FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.workflow_id = $1 AND j.item_index IS NOT NULL
          GROUP BY j.step",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Ends map step `step`'s own job (task `task_id`): its result the runs' results in order, or
/// `error`. It is never on the dead list (its runs are).
pub async fn finish_map(
    conn: &mut PgConnection,
    id: Uuid,
    step: &str,
    task_id: Uuid,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET
                result = CASE WHEN $4::text IS NULL THEN COALESCE((
                    SELECT jsonb_agg(r.result ORDER BY r.item_index) FROM jobs r
                     WHERE r.workflow_id = $1 AND r.step = $2 AND r.item_index IS NOT NULL
                ), '[]'::jsonb) END,
                last_error = $4, finished_at = now(), unique_lock = NULL,
                dead_purged_at = CASE WHEN $4::text IS NULL THEN NULL ELSE now() END
          WHERE task_id = $3",
    )
    .bind(id)
    .bind(step)
    .bind(task_id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every live task of workflow `id`: its steps' and its map runs'.
pub async fn live_tasks(conn: &mut PgConnection, id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT j.task_id FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.workflow_id = $1
            AND t.status IN ('pending', 'scheduled', 'queued', 'running', 'retrying')
          ORDER BY j.task_id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// The runs of map step `step` of workflow `id` that did not succeed.
pub async fn failed_runs(
    conn: &mut PgConnection,
    id: Uuid,
    step: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT j.task_id FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.workflow_id = $1 AND j.step = $2 AND j.item_index IS NOT NULL
            AND t.status IN ('dead', 'cancelled')
          ORDER BY j.task_id",
    )
    .bind(id)
    .bind(step)
    .fetch_all(conn)
    .await
}

/// The workflow task `task_id` is a step of, and whether that step maps (runs of a map are not
/// steps themselves).
pub async fn step_of_task(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT workflow_id, map IS NOT NULL FROM workflow_steps WHERE task_id = $1")
        .bind(task_id)
        .fetch_optional(conn)
        .await
}

/// Cancels `owner`'s running workflows (locking them); returns them.
pub async fn cancel_owned(
    conn: &mut PgConnection,
    owner: Uuid,
) -> Result<Vec<WorkflowRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE workflows SET status = 'cancelled', updated_at = now(), finished_at = now()
          WHERE owner_id = $1 AND status = 'running' RETURNING {COLUMNS}"
    ))
    .bind(owner)
    .fetch_all(conn)
    .await
}
