//! A task's job over HTTP: cancel it, list its runs; the caller's per-key limits.

use crate::{domain::job::Attempt, domain::task::Task, http::admin, AppState};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(attempts))
        .routes(routes!(cancel))
        .routes(routes!(admin::dead_list, admin::dead_purge))
        .routes(routes!(admin::dead_replay))
        .routes(routes!(admin::workers))
        .routes(routes!(admin::worker))
        .routes(routes!(limits))
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Cancelled: a queued job never starts, a running one is told to stop; a cron template stops ticking", body = Task),
        (status = 403, description = "Visible but not editable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 409, description = "Already finished", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, task_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let saved = crate::service::stop::cancel(&state, &identity, &id).await?;
    Ok(crate::http::tasks::with_etag(StatusCode::OK, saved))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempts {
    pub items: Vec<Attempt>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/attempts", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Every run of the task's job, oldest first", body = Attempts),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn attempts(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Attempts>, ApiError> {
    let items = crate::service::jobs::attempts(&state, &identity, &id).await?;
    Ok(Json(Attempts { items }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub items: Vec<crate::domain::limit::KeySummary>,
}

#[utoipa::path(get, path = "/api/v1/limits", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "The caller's limit keys (by name, at most 500): settings, jobs in flight and waiting, and since when the oldest waits", body = Limits)))]
pub async fn limits(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Limits>, ApiError> {
    let items = crate::service::limits::summary(&state, &identity).await?;
    Ok(Json(Limits { items }))
}
