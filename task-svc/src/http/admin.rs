//! Operators' job routes: dead jobs (list, replay, purge) and the workers (all, or one with
//! its runs).

use axum::{
    extract::{Path, Query, State},
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};

use crate::{
    domain::{
        job::{DeadJob, DeadSelection},
        job_search::DeadQuery,
    },
    infra::workers::WorkerInfo,
    service::workers::WorkerDetail,
    AppState,
};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadJobs {
    pub items: Vec<DeadJob>,
}

#[utoipa::path(get, path = "/api/v1/admin/jobs/dead", tag = "jobs", security(("bearer" = [])), params(DeadQuery),
    responses((status = 200, description = "Dead jobs not purged, newest first", body = DeadJobs),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "A kind or error filter too long (`invalid_filter`)", body = ProblemBody)))]
pub async fn dead_list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<DeadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadJobs>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let items = crate::service::dead::list(&state, &query).await?;
    Ok(Json(DeadJobs { items }))
}

/// How many jobs an admin call changed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Affected {
    pub count: u64,
}

fn check_selection(selection: &DeadSelection) -> Result<(), ApiError> {
    if selection
        .task_ids
        .as_ref()
        .is_some_and(|ids| ids.len() > 1000)
    {
        return Err(ApiError::unprocessable(
            "too_many",
            "at most 1000 task_ids per call",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/admin/jobs/dead/replay", tag = "jobs", security(("bearer" = [])), request_body = DeadSelection,
    responses((status = 200, description = "Replayed: each job is queued again with a fresh budget of attempts; a workflow step through its workflow's retry (a step of a workflow still running stays dead)", body = Affected),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 409, description = "The task_ids named only workflow steps whose workflows are still running (`not_retryable`)", body = ProblemBody),
        (status = 422, description = "More than 1000 task_ids", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn dead_replay(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(selection): JsonBody<DeadSelection>,
) -> Result<Json<Affected>, ApiError> {
    identity.require_admin()?;
    check_selection(&selection)?;
    let count = crate::service::dead::replay_dead(&state, &identity, &selection).await?;
    Ok(Json(Affected { count }))
}

#[utoipa::path(delete, path = "/api/v1/admin/jobs/dead", tag = "jobs", security(("bearer" = [])), request_body = DeadSelection,
    responses((status = 200, description = "Purged from the dead list and the dead-letter queue (the tasks stay, dead)", body = Affected),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "More than 1000 task_ids", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn dead_purge(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(selection): JsonBody<DeadSelection>,
) -> Result<Json<Affected>, ApiError> {
    identity.require_admin()?;
    check_selection(&selection)?;
    let count = crate::service::dead::purge_dead(&state, &selection).await?;
    Ok(Json(Affected { count }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workers {
    pub items: Vec<WorkerInfo>,
}

#[utoipa::path(get, path = "/api/v1/workers", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Workers that reported in the last hour, with alive/dead/stopped", body = Workers),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 503, description = "Redis is down", body = ProblemBody)))]
pub async fn workers(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Workers>, ApiError> {
    identity.require_admin()?;
    let items = crate::service::workers::list(&state).await?;
    Ok(Json(Workers { items }))
}

#[utoipa::path(get, path = "/api/v1/workers/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "The worker's id")),
    responses((status = 200, description = "The worker's heartbeat (if it reported in the last hour), its runs in flight (oldest first, at most 200) and the last 20 it ended in the last day", body = WorkerDetail),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No worker of that id reported in the last hour or ran a job in the last day", body = ProblemBody),
        (status = 503, description = "Redis is down", body = ProblemBody)))]
pub async fn worker(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<WorkerDetail>, ApiError> {
    identity.require_admin()?;
    Ok(Json(crate::service::workers::detail(&state, &id).await?))
}
