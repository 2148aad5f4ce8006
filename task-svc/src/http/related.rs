//! A task's subtasks and relations over HTTP: `GET /api/v1/tasks/{id}/children`,
//! `GET/POST /api/v1/tasks/{id}/relations`, `DELETE /api/v1/tasks/{id}/relations/{relation}/{task_id}`.

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
    service::{
        relations::{self, Relate, RelationView},
        subtasks::{self, Children},
    },
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(children))
        .routes(routes!(list, relate))
        .routes(routes!(unrelate))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/children", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Its subtasks the caller may see, and its progress (done of total)", body = Children),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn children(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Children>, ApiError> {
    Ok(Json(subtasks::children(&state, &identity, &id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Relations {
    pub items: Vec<RelationView>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/relations", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Its relations to tasks the caller may see, each in this task's words (`blocks`, `blocked_by`, `relates_to`, `duplicates`, `duplicated_by`)", body = Relations),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Relations>, ApiError> {
    let items = relations::list(&state, &identity, &id).await?;
    Ok(Json(Relations { items }))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/relations", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")), request_body = Relate,
    responses((status = 201, description = "Related; the other task reads it in its own words"),
        (status = 200, description = "The relation was already there"),
        (status = 403, description = "Neither who may change the task nor its assignee", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 422, description = "`task_id` names no task the caller sees, or this one (`invalid_relation`); 100 relations already (`too_many_relations`)", body = ProblemBody)))]
pub async fn relate(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<Relate>,
) -> Result<StatusCode, ApiError> {
    Ok(
        match relations::relate(&state, &identity, &id, &request).await? {
            true => StatusCode::CREATED,
            false => StatusCode::OK,
        },
    )
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}/relations/{relation}/{task_id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("relation" = String, Path, description = "As this task reads it: `blocks`, `blocked_by`, `relates_to`, `duplicates` or `duplicated_by`"),
        ("task_id" = uuid::Uuid, Path, description = "The other task")),
    responses((status = 204, description = "Removed, for both tasks"),
        (status = 403, description = "Neither who may change the task nor its assignee", body = ProblemBody),
        (status = 404, description = "No such task or relation", body = ProblemBody)))]
pub async fn unrelate(
    State(state): State<AppState>,
    identity: Identity,
    Path((id, relation, other)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    relations::unrelate(&state, &identity, &id, &relation, &other).await?;
    Ok(StatusCode::NO_CONTENT)
}
