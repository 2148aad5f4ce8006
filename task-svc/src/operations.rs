//! What operators do to jobs beside the dead-letter calls in `jobs`: find jobs by kind, state,
//! pool and payload content (admins), and run a waiting job now instead of at its backoff or
//! its `run_at` (whoever may cancel it).

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{identity::Identity, outbox, problem::ProblemBody, ApiError};
use uuid::Uuid;

use crate::{domain::task::Task, AppState};

/// Every state a job's task can be in.
const STATES: [&str; 8] = [
    "pending",
    "scheduled",
    "queued",
    "running",
    "retrying",
    "completed",
    "dead",
    "cancelled",
];
/// Longest `payload` filter, in bytes.
const MAX_FILTER_BYTES: usize = 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/jobs", get(search))
        .route("/api/v1/admin/jobs/{id}/retry", post(retry_now))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs of this kind.
    #[param(max_length = 100)]
    pub kind: Option<String>,
    /// Only jobs in this state: pending, scheduled, queued, running, retrying, completed, dead or
    /// cancelled.
    pub state: Option<String>,
    /// Only jobs of this pool.
    #[param(max_length = 100)]
    pub pool: Option<String>,
    /// Only jobs whose payload contains this JSON object (PostgreSQL's `@>`: `{"url":"https://a"}`
    /// matches every payload with that `url`, whatever else it holds). At most 1 KiB.
    #[param(max_length = 1024)]
    pub payload: Option<String>,
    /// Jobs created before this task id (the `next_before` of the previous page).
    pub before: Option<Uuid>,
    /// At most this many, newest first (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// One job as an operator looks for it.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobSummary {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub status: String,
    pub kind: String,
    pub pool: String,
    pub payload: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub run_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    pub items: Vec<JobSummary>,
    /// Pass as `before` for the next page; absent on the last one.
    pub next_before: Option<Uuid>,
}

fn too_long(name: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > max => Err(ApiError::unprocessable(
            "invalid_filter",
            format!("{name} is longer than {max} bytes"),
        )),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "jobs", security(("bearer" = [])), params(JobQuery),
    responses((status = 200, description = "Jobs matching every filter given, newest first", body = JobPage),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "An unknown state, or a payload filter that is not a JSON object", body = ProblemBody)))]
pub async fn search(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    too_long("kind", &query.kind, 100)?;
    too_long("pool", &query.pool, 100)?;
    too_long("payload", &query.payload, MAX_FILTER_BYTES)?;
    if let Some(s) = query.state.as_deref().filter(|s| !STATES.contains(s)) {
        return Err(ApiError::unprocessable(
            "invalid_filter",
            format!("state {s:?} is not one of {}", STATES.join(", ")),
        ));
    }
    let payload: Option<Value> = match &query.payload {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => Some(value),
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_filter",
                    "payload must be a JSON object, such as {\"url\":\"https://example.com\"}",
                ))
            }
        },
    };
    let limit = i64::from(query.limit.unwrap_or(50).clamp(1, 200));
    let mut items: Vec<JobSummary> = sqlx::query_as(
        "SELECT t.id AS task_id, t.owner_id, t.title, t.status, j.kind, j.pool, j.payload,
                j.attempt, j.max_attempts, j.last_error, t.created_at, j.run_at, j.finished_at
           FROM tasks t JOIN jobs j ON j.task_id = t.id
          WHERE ($1::text IS NULL OR j.kind = $1)
            AND ($2::text IS NULL OR t.status = $2)
            AND ($3::text IS NULL OR j.pool = $3)
            AND ($4::jsonb IS NULL OR j.payload @> $4)
            AND ($5::uuid IS NULL OR t.id < $5)
          ORDER BY t.id DESC
          LIMIT $6",
    )
    .bind(&query.kind)
    .bind(&query.state)
    .bind(&query.pool)
    .bind(&payload)
    .bind(query.before)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let next_before = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|job| job.task_id)
    } else {
        None
    };
    Ok(Json(JobPage { items, next_before }))
}

/// Task `id`, locked, if the caller may act on its job as its creator, its channel's owner or
/// an admin; 404 if they cannot see it, 403 (naming `action`) if they only can see it.
pub(crate) async fn editable_job(
    tx: &mut sqlx::PgConnection,
    identity: &Identity,
    id: &str,
    action: &str,
) -> Result<Task, ApiError> {
    let (task, editable) = crate::service::tasks::visible_for_edit(tx, identity, id).await?;
    if !editable {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("only the task's creator, its channel's owner or an admin can {action}"),
        ));
    }
    Ok(task)
}

#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/retry", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 202, description = "Handed to its pool now; the task is as it was until a worker takes it", body = Task),
        (status = 403, description = "Visible but not editable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 409, description = "Not a job waiting for its next attempt or its scheduled time", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, task_id = %id))]
pub async fn retry_now(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let task = editable_job(&mut tx, &identity, &id, "run it now").await?;
    // A waiting dispatch is an outbox row not yet published; bringing it forward is all it
    // takes (the job's attempt, idempotency key and everything else stay as they are).
    let moved = sqlx::query(
        "UPDATE outbox o SET available_at = now()
           FROM jobs j, tasks t
          WHERE j.task_id = $1 AND t.id = j.task_id AND o.id = j.dispatch_event
            AND t.status IN ('retrying', 'scheduled') AND j.cron IS NULL
            AND o.published_at IS NULL AND o.available_at > now()",
    )
    .bind(task.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(ApiError::conflict(
            "not_waiting",
            "only a job waiting for its next attempt or its scheduled time can run now",
        ));
    }
    sqlx::query("UPDATE jobs SET run_at = now() WHERE task_id = $1 AND run_at > now()")
        .bind(task.id)
        .execute(&mut *tx)
        .await?;
    // The relay may be asleep until the row's old time: wake it at commit.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(outbox::NOTIFY_CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!("job handed to its pool now");
    Ok(crate::http::tasks::with_etag(StatusCode::ACCEPTED, task))
}
