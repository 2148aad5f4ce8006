//! The operator's cron templates over HTTP (admins): `GET /api/v1/admin/cron`,
//! `POST /api/v1/admin/cron/{id}/pause`, `/resume`, `/run`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Serialize;
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::task::Task,
    service::cron_admin::{self, CronTemplate},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(run))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CronTemplates {
    pub items: Vec<CronTemplate>,
}

#[utoipa::path(get, path = "/api/v1/admin/cron", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Every live cron template (running ones first, by their next tick; at most 500) with its next three ticks and last five runs", body = CronTemplates),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<CronTemplates>, ApiError> {
    identity.require_admin()?;
    let items = cron_admin::list(&state).await?;
    Ok(Json(CronTemplates { items }))
}

#[utoipa::path(post, path = "/api/v1/admin/cron/{id}/pause", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The template's task id")),
    responses((status = 200, description = "Paused: no tick runs until it is resumed", body = CronTemplate),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such live cron template", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, template_id = %id))]
pub async fn pause(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<CronTemplate>, ApiError> {
    identity.require_admin()?;
    Ok(Json(cron_admin::set_paused(&state, &id, true).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/cron/{id}/resume", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The template's task id")),
    responses((status = 200, description = "Running again from its next tick after now (ticks missed while paused do not run)", body = CronTemplate),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such live cron template", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, template_id = %id))]
pub async fn resume(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<CronTemplate>, ApiError> {
    identity.require_admin()?;
    Ok(Json(cron_admin::set_paused(&state, &id, false).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/cron/{id}/run", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The template's task id")),
    responses((status = 202, description = "One run made now, beside the schedule (also while paused): its task", body = Task),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such live cron template", body = ProblemBody),
        (status = 409, description = "A run of this very moment exists (`tick_taken`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, template_id = %id))]
pub async fn run(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    identity.require_admin()?;
    let task = cron_admin::run_now(&state, &id).await?;
    Ok(crate::http::tasks::with_etag(StatusCode::ACCEPTED, task))
}
