//! The task resource over HTTP: create (one or in bulk), list, read, update (`PATCH` with
//! `If-Match`), delete, history, and the priority model's report. Thin: the rules are in
//! [`crate::service`].
//!
//! Visibility: a task is visible to its owner, its assignee, its channel's members and admins;
//! anyone else gets 404, never 403, so ids do not leak.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domain::priority::{Report, MIN_SAMPLES},
    domain::{
        listing::{ListQuery, TaskList},
        task::{CreateTask, HistoryEntry, Task, UpdateTask},
    },
    service::{self, create::Created},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(create_bulk))
        .routes(routes!(read, update, delete))
        .routes(routes!(history))
        .routes(routes!(model_report))
        .routes(routes!(model_retrain))
}

/// A task with its `ETag` header.
pub fn with_etag(status: StatusCode, task: Task) -> Response {
    let etag = HeaderValue::from_str(&task.etag()).ok();
    let mut response = (status, Json(task)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), request_body = CreateTask,
    responses((status = 201, description = "Created; task.created (and task.assigned) are published", body = Task),
        (status = 200, description = "A live job with the same unique_key exists: that task", body = Task),
        (status = 503, description = "A job for a new pool while RabbitMQ is down", body = ProblemBody),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 403, description = "A personal access token without `jobs:write` asks for a `job` (`insufficient_scope`)", body = ProblemBody),
        (status = 404, description = "`channel_id` names a channel the caller is not a member of", body = ProblemBody),
        (status = 422, description = "Invalid title, description, tags or assignee; a job out of bounds (`invalid_job`, `cron_too_frequent`, `unknown_pool`)", body = ProblemBody),
        (status = 429, description = "A member's quota of live jobs or cron templates is used up (`quota_exceeded`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateTask>,
) -> Result<Response, ApiError> {
    require_job_scope(&identity, std::slice::from_ref(&request))?;
    let (task, new) = crate::service::create::create(&state, &identity, request).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, task))
}

/// A personal access token creates a job (a task with a `job`) only with `jobs:write`.
fn require_job_scope(identity: &Identity, tasks: &[CreateTask]) -> Result<(), ApiError> {
    match tasks.iter().any(|t| t.job.is_some()) {
        true => identity.require_scope(shared::scopes::Scope::JobsWrite),
        false => Ok(()),
    }
}

/// Tasks to create at once: all or none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTasks {
    /// 1 to 1000 tasks.
    #[schema(min_items = 1, max_items = 1000)]
    pub tasks: Vec<CreateTask>,
}

/// What a bulk creation did, in the order given.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedTasks {
    /// The ids of the tasks, new or (for a live `unique_key`) existing.
    pub ids: Vec<Uuid>,
    /// How many are new.
    pub created: usize,
}

#[utoipa::path(post, path = "/api/v1/tasks/bulk", tag = "tasks", security(("bearer" = [])), request_body = CreateTasks,
    responses((status = 201, description = "All created in one transaction (the job engine's bulk path); the events are those of single creations", body = CreatedTasks),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 403, description = "A personal access token without `jobs:write` asks for a `job` (`insufficient_scope`)", body = ProblemBody),
        (status = 404, description = "A task's `channel_id` names a channel the caller is not a member of (the detail names which); nothing was created", body = ProblemBody),
        (status = 422, description = "A task is invalid (the detail names which); nothing was created", body = ProblemBody),
        (status = 429, description = "The tasks' jobs would pass a member's quota (`quota_exceeded`); nothing was created", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn create_bulk(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateTasks>,
) -> Result<(StatusCode, Json<CreatedTasks>), ApiError> {
    require_job_scope(&identity, &request.tasks)?;
    let results = crate::service::create::create_bulk(&state, &identity, request.tasks).await?;
    let created = results
        .iter()
        .filter(|r| matches!(r, Created::New(_)))
        .count();
    let ids = results
        .into_iter()
        .map(|r| match r {
            Created::New(task) => task.id,
            Created::Existing(id) => id,
        })
        .collect();
    Ok((StatusCode::CREATED, Json(CreatedTasks { ids, created })))
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "Tasks the caller may see (own, assigned, in their channels), newest first", body = TaskList),
        (status = 400, description = "Unknown filter or bad cursor", body = ProblemBody),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let axum::extract::Query(query) = query?;
    Ok(Json(
        crate::service::query::list(&state, &identity, query).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task, with its ETag", body = Task),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = crate::service::tasks::read(&state, &identity, &id).await?;
    Ok(with_etag(StatusCode::OK, task))
}

/// The `If-Match` header's value, when given (a value that is not text matches nothing).
fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("").to_string())
}

#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])), request_body = UpdateTask,
    params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before; a stale one is 412")),
    responses((status = 200, description = "Updated, with the new ETag", body = Task),
        (status = 403, description = "Visible but not editable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 409, description = "Forbidden status transition; the detail names the allowed ones", body = ProblemBody),
        (status = 412, description = "Stale If-Match: nothing changed", body = ProblemBody),
        (status = 422, description = "Invalid field", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, task_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<UpdateTask>,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers);
    let task =
        crate::service::tasks::update(&state, &identity, &id, if_match.as_deref(), request).await?;
    Ok(with_etag(StatusCode::OK, task))
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before; a stale one is 412")),
    responses((status = 204, description = "Deleted; task.deleted is published"),
        (status = 403, description = "Visible but not deletable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 412, description = "Stale If-Match: nothing deleted", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let if_match = if_match(&headers);
    crate::service::deletion::delete(&state, &identity, &id, if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct History {
    pub items: Vec<HistoryEntry>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/history", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Every change, oldest first", body = History),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn history(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<History>, ApiError> {
    let items = crate::service::tasks::history(&state, &identity, &id).await?;
    Ok(Json(History { items }))
}

#[utoipa::path(get, path = "/api/v1/tasks/priority-model", tag = "tasks", security(("bearer" = [])),
    responses((status = 200, description = "The newest priority model's held-out accuracy next to the majority-class baseline", body = Report),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No model trained yet (the heuristic decides)", body = ProblemBody)))]
pub async fn model_report(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Report>, ApiError> {
    identity.require_admin()?;
    service::priority::latest(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("priority model"))
}

#[utoipa::path(post, path = "/api/v1/tasks/priority-model/retrain", tag = "tasks", security(("bearer" = [])),
    responses((status = 200, description = "Trained now on every user-labelled task", body = Report),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 409, description = "Too few labelled tasks (or a single priority) to train on", body = ProblemBody)))]
pub async fn model_retrain(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Report>, ApiError> {
    identity.require_admin()?;
    service::priority::retrain(&state.pool).await?.map(Json).ok_or_else(|| {
        ApiError::conflict(
            "not_enough_data",
            format!(
                "training needs at least {} tasks whose priority a person set, with two priorities or more",
                MIN_SAMPLES
            ),
        )
    })
}
