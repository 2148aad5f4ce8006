//! The task resource: `POST /api/v1/tasks`, `GET /api/v1/tasks`, `GET /api/v1/tasks/{id}`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    events::{CloudEvent, TaskCreated},
    identity::Identity,
    outbox,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use uuid::Uuid;

use crate::{AppState, SERVICE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks", get(list).post(create))
        .route("/api/v1/tasks/{id}", get(read))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub assignee_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, owner_id, title, description, status, priority, assignee_id, \
                       channel_id, due_at, created_at, updated_at";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub priority: Option<Priority>,
    pub due_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), request_body = CreateTask,
    responses((status = 201, description = "Created; task.created is published", body = Task),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 422, description = "Invalid title or description", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateTask>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_title",
            "title must be 1 to 200 characters",
        ));
    }
    if request.description.chars().count() > 10_000 {
        return Err(ApiError::unprocessable(
            "invalid_description",
            "description must be at most 10000 characters",
        ));
    }
    let priority = request.priority.unwrap_or(Priority::Normal);
    let mut tx = state.pool.begin().await?;
    let task: Task = sqlx::query_as(&format!(
        "INSERT INTO tasks (id, owner_id, title, description, priority, due_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(identity.user_id)
    .bind(title)
    .bind(&request.description)
    .bind(priority.as_str())
    .bind(request.due_at)
    .fetch_one(&mut *tx)
    .await?;
    let event = CloudEvent::new(
        SERVICE,
        TaskCreated {
            task_id: task.id,
            owner_id: task.owner_id,
            title: task.title.clone(),
            status: task.status.clone(),
            priority: task.priority.clone(),
            assignee_id: task.assignee_id,
            channel_id: task.channel_id,
            due_at: task.due_at,
        },
    );
    outbox::enqueue(&mut tx, event).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(task)))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskList {
    pub items: Vec<Task>,
}

/// The caller's own tasks, newest first (filters and pagination come with the task issue).
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])),
    responses((status = 200, description = "The caller's tasks, newest first", body = TaskList),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<TaskList>, ApiError> {
    let items: Vec<Task> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100"
    ))
    .bind(identity.user_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(TaskList { items }))
}

/// One task; another user's task is a 404, not a 403, so ids do not leak.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task", body = Task),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("task"))?;
    let task: Option<Task> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1 AND owner_id = $2"
    ))
    .bind(id)
    .bind(identity.user_id)
    .fetch_optional(&state.pool)
    .await?;
    task.map(Json).ok_or_else(|| ApiError::not_found("task"))
}
