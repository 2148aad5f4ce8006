//! What operators do to jobs beside the dead-letter calls ([`crate::http::admin`]): find jobs by
//! kind, state, pool, owner, payload content, error text and creation time, and count them by
//! state (admins); run a waiting job now instead of at its backoff or its `run_at` (whoever may
//! cancel it); delete a dead job, and act on up to 1000 picked jobs at once (admins).

use axum::{
    extract::{Path, Query, State},
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
    domain::{
        job_search::{BulkOutcome, BulkRequest, JobPage, JobQuery, StateCounts},
        task::Task,
    },
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(counts))
        .routes(routes!(bulk))
        .routes(routes!(delete_dead))
        .routes(routes!(retry_now))
}

type JobParams = Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>;

#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "jobs", security(("bearer" = [])), params(JobQuery),
    responses((status = 200, description = "Jobs matching every filter given, newest (or oldest) first", body = JobPage),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "An unknown state or sort, a payload filter that is not a JSON object, a filter too long, a time range backwards, or a cursor that does not go with the sort (`invalid_filter`)", body = ProblemBody)))]
pub async fn search(
    State(state): State<AppState>,
    identity: Identity,
    query: JobParams,
) -> Result<Json<JobPage>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    Ok(Json(
        crate::service::operations::search(&state, &query).await?,
    ))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobCounts {
    pub counts: StateCounts,
}

#[utoipa::path(get, path = "/api/v1/admin/jobs/counts", tag = "jobs", security(("bearer" = [])), params(JobQuery),
    responses((status = 200, description = "How many jobs the filters select in each state (`state`, `sort`, `before`, `after` and `limit` are not used); cron templates count as scheduled", body = JobCounts),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "A filter that is not right, as for the search (`invalid_filter`)", body = ProblemBody)))]
pub async fn counts(
    State(state): State<AppState>,
    identity: Identity,
    query: JobParams,
) -> Result<Json<JobCounts>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let counts = crate::service::operations::counts(&state, &query).await?;
    Ok(Json(JobCounts { counts }))
}

#[utoipa::path(post, path = "/api/v1/admin/jobs/bulk", tag = "jobs", security(("bearer" = [])), request_body = BulkRequest,
    responses((status = 200, description = "Each job named, once, as its own call would: `retry_now` runs a job waiting for its retry or scheduled time now; `cancel` cancels a live job; `replay` queues a dead job again with a fresh budget of attempts; `delete` deletes a dead job with its task. A job the action does not apply to (its state, a workflow's step, gone) is skipped and counted", body = BulkOutcome),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "No task_ids, or more than 1000 (`invalid_selection`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn bulk(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkOutcome>, ApiError> {
    identity.require_admin()?;
    Ok(Json(
        crate::service::job_admin::bulk(&state, &identity, &request).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/admin/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 204, description = "The dead job is deleted with its task (task.deleted is published), off the dead list and out of its pool's dead-letter queue"),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such task", body = ProblemBody),
        (status = 409, description = "Its job is not dead (`not_dead`: cancel a live one first), or it is a workflow's step (`workflow_step`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, task_id = %id))]
pub async fn delete_dead(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    identity.require_admin()?;
    crate::service::job_admin::delete_dead(&state, &identity, &id).await?;
    Ok(StatusCode::NO_CONTENT)
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
