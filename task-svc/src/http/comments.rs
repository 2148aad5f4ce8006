//! A task's comments over HTTP: `GET/POST /api/v1/tasks/{id}/comments`,
//! `PATCH/DELETE /api/v1/tasks/{id}/comments/{comment_id}`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Serialize;
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::comment::{Comment, WriteComment},
    service::comments,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(edit, delete))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Comments {
    pub items: Vec<Comment>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/comments", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task's comments, oldest first (at most 500)", body = Comments),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Comments>, ApiError> {
    let items = comments::list(&state, &identity, &id).await?;
    Ok(Json(Comments { items }))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/comments", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")), request_body = WriteComment,
    responses((status = 201, description = "The comment; publishes task.commented, and task.mentioned for each person it names who can see the task", body = Comment),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 422, description = "An empty or too long body", body = ProblemBody)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<WriteComment>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let comment = comments::create(&state, &identity, &id, &request.body).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

#[utoipa::path(patch, path = "/api/v1/tasks/{id}/comments/{comment_id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id"), ("comment_id" = uuid::Uuid, Path, description = "Comment id")),
    request_body = WriteComment,
    responses((status = 200, description = "The edited comment; a person it names for the first time is told", body = Comment),
        (status = 403, description = "Not the comment's author", body = ProblemBody),
        (status = 404, description = "No such comment on a task visible to the caller", body = ProblemBody),
        (status = 422, description = "An empty or too long body", body = ProblemBody)))]
pub async fn edit(
    State(state): State<AppState>,
    identity: Identity,
    Path((id, comment_id)): Path<(String, String)>,
    JsonBody(request): JsonBody<WriteComment>,
) -> Result<Json<Comment>, ApiError> {
    let comment = comments::edit(&state, &identity, &id, &comment_id, &request.body).await?;
    Ok(Json(comment))
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}/comments/{comment_id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id"), ("comment_id" = uuid::Uuid, Path, description = "Comment id")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Neither the comment's author nor an admin", body = ProblemBody),
        (status = 404, description = "No such comment on a task visible to the caller", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path((id, comment_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    comments::delete(&state, &identity, &id, &comment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
