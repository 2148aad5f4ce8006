//! The operator's cron templates over HTTP (admins): `GET /api/v1/admin/cron`,
//! `PATCH /api/v1/admin/cron/{id}` (its schedule), `POST /api/v1/admin/cron/{id}/pause`,
//! `/resume`, `/run`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::task::Task,
    service::cron_admin::{self, CronTemplate},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(edit))
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

/// A template's new schedule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronChange {
    /// A cron expression (5 fields, or 6 with seconds first, in UTC; at most 100 bytes).
    #[schema(max_length = 100)]
    pub cron: String,
}

#[utoipa::path(patch, path = "/api/v1/admin/cron/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The template's task id")), request_body = CronChange,
    responses((status = 200, description = "Runs on the new schedule from its first tick after now (a paused template stays paused)", body = CronTemplate),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such live cron template", body = ProblemBody),
        (status = 422, description = "Not a cron expression, one that never fires again, or longer than 100 bytes (`invalid_job`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, template_id = %id))]
pub async fn edit(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<CronChange>,
) -> Result<Json<CronTemplate>, ApiError> {
    identity.require_admin()?;
    Ok(Json(
        cron_admin::set_schedule(&state, &id, &change.cron).await?,
    ))
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
