//! Following a task over HTTP: `GET /api/v1/tasks/{id}/watchers`,
//! `PUT/DELETE /api/v1/tasks/{id}/watchers/me`.

use axum::{
    extract::{Path, State},
    Json,
};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    service::watchers::{self, Followers},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(follow, unfollow))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/watchers", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Who follows the task (its owner, assignee and commenters by default, less who unfollowed), and whether the caller does", body = Followers),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Followers>, ApiError> {
    Ok(Json(watchers::list(&state, &identity, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/tasks/{id}/watchers/me", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The caller follows the task: they hear of its moves", body = Followers),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn follow(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Followers>, ApiError> {
    Ok(Json(watchers::choose(&state, &identity, &id, true).await?))
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}/watchers/me", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The caller no longer follows the task, even as its owner, assignee or a commenter", body = Followers),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn unfollow(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Followers>, ApiError> {
    Ok(Json(watchers::choose(&state, &identity, &id, false).await?))
}
