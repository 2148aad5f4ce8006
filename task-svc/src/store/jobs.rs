//! The `jobs` table (and the task rows report handling locks with it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain::job::JobView, domain::status::Status, domain::task::Task};

pub const VIEW_COLUMNS: &str = "kind, payload, pool, run_at, cron, next_run_at, parent_id, \
    scheduled_for, max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, unique_key, attempt, \
    progress, result, last_error, started_at, finished_at, limit_state, limit_since, \
    CASE WHEN limit_key IS NOT NULL THEN jsonb_strip_nulls(jsonb_build_object('key', limit_key, \
    'concurrency', limit_concurrency, 'per_second', limit_per_second)) END AS \"limit\"";

/// Attaches their jobs to `tasks` (one query for the page).
pub async fn attach(conn: &mut PgConnection, tasks: &mut [Task]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, sqlx::types::Json<JobView>)> = sqlx::query_as(&format!(
        "SELECT task_id, to_jsonb(v) FROM (SELECT task_id, {VIEW_COLUMNS} FROM jobs
           WHERE task_id = ANY($1)) v"
    ))
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut views: HashMap<Uuid, JobView> = rows.into_iter().map(|(id, v)| (id, v.0)).collect();
    for task in tasks {
        task.job = views.remove(&task.id);
    }
    Ok(())
}

/// What a dispatch of a job carries.
#[derive(Debug, sqlx::FromRow)]
pub struct DispatchSettings {
    pub kind: String,
    pub payload: Value,
    pub pool: String,
    pub max_attempts: i32,
    pub timeout_ms: i64,
    pub workflow_id: Option<Uuid>,
    pub step: Option<String>,
    pub inputs: Option<Value>,
    pub item: Option<Value>,
    /// Its key, if it has a limit: its first dispatch goes through the key's admission.
    pub limit_key: Option<String>,
}

/// The task and the job fields report handling needs, locked.
#[derive(Debug, sqlx::FromRow)]
pub struct Locked {
    pub dispatch_id: Option<Uuid>,
    pub current_run: Option<Uuid>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    pub kind: String,
    pub pool: String,
    pub lost_runs: i32,
    /// Its limit key, if it has one.
    pub limit_key: Option<String>,
}

pub async fn lock(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Option<(Task, Locked)>, sqlx::Error> {
    let task: Option<Task> = sqlx::query_as(&format!(
        "SELECT {} FROM tasks WHERE id = $1 FOR UPDATE",
        crate::store::tasks::COLUMNS
    ))
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(task) = task else { return Ok(None) };
    let job: Option<Locked> = sqlx::query_as(
        "SELECT dispatch_id, current_run, attempt, max_attempts, backoff_base_ms, backoff_max_ms,
                kind, pool, lost_runs, limit_key
           FROM jobs WHERE task_id = $1",
    )
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(job.map(|job| (task, job)))
}

/// Moves an automated task to `status` (no history entry: runs are recorded in
/// `job_attempts`); bumps the version so ETags change.
pub async fn set_status(
    conn: &mut PgConnection,
    task: &mut Task,
    status: Status,
) -> Result<(), sqlx::Error> {
    let (version, updated_at): (i32, DateTime<Utc>) = sqlx::query_as(
        "UPDATE tasks SET status = $2, version = version + 1, updated_at = now()
          WHERE id = $1 RETURNING version, updated_at",
    )
    .bind(task.id)
    .bind(status)
    .fetch_one(&mut *conn)
    .await?;
    task.status = status;
    task.version = version;
    task.updated_at = updated_at;
    Ok(())
}

/// Sets a cron template's next tick (`None`: it never fires again).
pub async fn set_next_run(
    tx: &mut PgConnection,
    template_id: Uuid,
    next: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET next_run_at = $2 WHERE task_id = $1")
        .bind(template_id)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The dispatch event of task `task_id`'s job: `None` when the task has no job.
pub async fn dispatch_event_of(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Option<Option<Uuid>>, sqlx::Error> {
    sqlx::query_scalar("SELECT dispatch_event FROM jobs WHERE task_id = $1")
        .bind(task_id)
        .fetch_optional(conn)
        .await
}

/// The current dispatch of task `task_id`'s job, if it has one.
pub async fn current_dispatch(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    Ok(
        sqlx::query_scalar("SELECT dispatch_id FROM jobs WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// Drops the dispatch `event` if the relay has not published it and it has an outbox row of its
/// own (one sharing a group row is left to the relay). Returns whether it did.
pub async fn drop_unpublished(conn: &mut PgConnection, event: Uuid) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM outbox WHERE id = $1 AND published_at IS NULL")
            .bind(event)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// A stopped job: finished now, its unique key free, no next cron tick. `in_hand`: a worker may
/// hold its dispatch (published, or running), so it keeps its key's place until that run's
/// report ends it; otherwise the place (or its wait) is given up now.
pub async fn mark_stopped(
    conn: &mut PgConnection,
    task_id: Uuid,
    in_hand: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET finished_at = now(), unique_lock = NULL, next_run_at = NULL,
                limit_state = CASE WHEN $2 AND limit_state = 'admitted' THEN limit_state END
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(in_hand)
    .execute(conn)
    .await?;
    Ok(())
}

/// `owner`'s live cron templates and jobs not yet running (only those in `channel`, if given),
/// locked, with their dispatch events. A row a concurrent commit changed is checked again
/// under the lock, so a job that finished meanwhile is left out.
pub async fn live_owned(
    conn: &mut PgConnection,
    owner: Uuid,
    channel: Option<Uuid>,
) -> Result<Vec<(Uuid, Option<Uuid>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.task_id, j.dispatch_event FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.owner_id = $1 AND j.finished_at IS NULL
            AND (j.cron IS NOT NULL OR t.status IN ('pending', 'scheduled', 'queued', 'retrying'))
            AND ($2::uuid IS NULL OR t.channel_id = $2)
          ORDER BY j.task_id
            FOR UPDATE OF t, j",
    )
    .bind(owner)
    .bind(channel)
    .fetch_all(conn)
    .await
}

/// Brings task `task_id`'s waiting dispatch (a retry or a scheduled run, not yet published) to
/// now, and wakes the relay at commit. Returns false when there is none to bring forward.
pub async fn bring_forward(conn: &mut PgConnection, task_id: Uuid) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "UPDATE outbox o SET available_at = now()
           FROM jobs j, tasks t
          WHERE j.task_id = $1 AND t.id = j.task_id AND o.id = j.dispatch_event
            AND t.status IN ('retrying', 'scheduled') AND j.cron IS NULL
            AND o.published_at IS NULL AND o.available_at > now()",
    )
    .bind(task_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE jobs SET run_at = now() WHERE task_id = $1 AND run_at > now()")
        .bind(task_id)
        .execute(&mut *conn)
        .await?;
    // The relay may be asleep until the row's old time: wake it at commit.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(shared::outbox::NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// `owner`'s live cron templates and live jobs (waiting or running, templates not counted).
pub async fn live_counts(conn: &mut PgConnection, owner: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE cron IS NOT NULL), count(*) FILTER (WHERE cron IS NULL)
           FROM jobs WHERE owner_id = $1 AND finished_at IS NULL",
    )
    .bind(owner)
    .fetch_one(conn)
    .await
}

/// What a new dispatch of task `task_id`'s job carries.
pub async fn dispatch_settings(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<DispatchSettings, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, payload, pool, max_attempts, timeout_ms, workflow_id, step, inputs, item,
                limit_key
           FROM jobs WHERE task_id = $1",
    )
    .bind(task_id)
    .fetch_one(conn)
    .await
}

/// A workflow step released: the task, queued, and its job's dispatch settings.
#[derive(Debug, sqlx::FromRow)]
pub struct Released {
    #[sqlx(flatten)]
    pub task: Task,
    #[sqlx(flatten)]
    pub settings: DispatchSettings,
}

/// Releases waiting step `task_id` with `inputs`, in one statement: queued (only if still
/// `pending`, checked under its row lock: a step stopped meanwhile stays), its inputs written;
/// `None` if it was no longer pending.
pub async fn release(
    conn: &mut PgConnection,
    task_id: Uuid,
    inputs: &Value,
) -> Result<Option<Released>, sqlx::Error> {
    sqlx::query_as(&format!(
        "WITH t AS (
            UPDATE tasks SET status = 'queued', version = version + 1, updated_at = now()
             WHERE id = $1 AND status = 'pending'
            RETURNING {}
         ), j AS (
            UPDATE jobs SET inputs = $2 FROM t WHERE jobs.task_id = t.id
            RETURNING jobs.kind, jobs.payload, jobs.pool, jobs.max_attempts, jobs.timeout_ms,
                      jobs.workflow_id, jobs.step, jobs.inputs, jobs.item, jobs.limit_key
         )
         SELECT t.*, j.* FROM t CROSS JOIN j",
        crate::store::tasks::COLUMNS
    ))
    .bind(task_id)
    .bind(inputs)
    .fetch_optional(conn)
    .await
}

/// The job's current dispatch is attempt `attempt`, `dispatch_id`, published as outbox event
/// `event_id`; no run of it is open or lost yet.
pub async fn set_dispatch(
    conn: &mut PgConnection,
    task_id: Uuid,
    attempt: i32,
    dispatch_id: Uuid,
    event_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET attempt = $2, dispatch_id = $3, dispatch_event = $4, lost_runs = 0,
                         current_run = NULL
          WHERE task_id = $1",
    )
    .bind(task_id)
    .bind(attempt)
    .bind(dispatch_id)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}
