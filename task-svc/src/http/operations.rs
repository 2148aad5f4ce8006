//! What operators do to jobs beside the dead-letter calls ([`crate::http::admin`]): find jobs by kind, state,
//! pool and payload content (admins), and run a waiting job now instead of at its backoff or
//! its `run_at` (whoever may cancel it).

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domain::{
        job::{JobQuery, JobSummary},
        task::Task,
    },
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(retry_now))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    pub items: Vec<JobSummary>,
    /// Pass as `before` for the next page; absent on the last one.
    pub next_before: Option<Uuid>,
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
    let (items, next_before) = crate::service::operations::search(&state, &query).await?;
    Ok(Json(JobPage { items, next_before }))
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
    let task = crate::service::operations::retry_now(&state, &identity, &id).await?;
    Ok(crate::http::tasks::with_etag(StatusCode::ACCEPTED, task))
}
