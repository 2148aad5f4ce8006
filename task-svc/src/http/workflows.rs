//! Workflows over HTTP (issue 27): create, read, list, cancel, retry.

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
    domain::workflow_view::{CreateWorkflow, WorkflowView},
    service::workflows::query::WorkflowQuery,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read))
        .routes(routes!(cancel))
        .routes(routes!(retry))
}

#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", security(("bearer" = [])), request_body = CreateWorkflow,
    responses((status = 201, description = "Created: every step is a task with its job; steps that need nothing are dispatched, the others wait", body = WorkflowView),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 422, description = "The graph or a step's job is invalid (`invalid_workflow`, `invalid_job`, `unknown_pool`): the detail names the step", body = ProblemBody),
        (status = 429, description = "The steps would pass a member's quota of live jobs (`quota_exceeded`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateWorkflow>,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    let view = crate::service::workflows::create::create(&state, &identity, request).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow and each step's status, result and attempts", body = WorkflowView),
        (status = 404, description = "No such workflow of the caller's", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(
        crate::service::workflows::query::read(&state, &identity, &id).await?,
    ))
}

/// A page of workflows (without their steps).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowList {
    pub items: Vec<WorkflowView>,
    /// The next page's `after`, when there is one.
    pub next: Option<uuid::Uuid>,
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", security(("bearer" = [])), params(WorkflowQuery),
    responses((status = 200, description = "The caller's workflows, newest first", body = WorkflowList),
        (status = 400, description = "Unknown filter", body = ProblemBody),
        (status = 403, description = "`all` asked by a member", body = ProblemBody),
        (status = 422, description = "`limit` out of 1 to 100", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<axum::extract::Query<WorkflowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WorkflowList>, ApiError> {
    let axum::extract::Query(query) = query?;
    let (items, next) = crate::service::workflows::query::list(&state, &identity, query).await?;
    Ok(Json(WorkflowList { items, next }))
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/cancel", tag = "workflows", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "Cancelled: waiting steps never run, queued ones never start, running ones are told to stop", body = WorkflowView),
        (status = 404, description = "No such workflow of the caller's", body = ProblemBody),
        (status = 409, description = "It completed or failed already", body = ProblemBody),
        (status = 503, description = "Redis, where cancel marks go, is unavailable", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, workflow_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(
        crate::service::workflows::control::cancel(&state, &identity, &id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/retry", tag = "workflows", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Workflow id")),
    responses((status = 200, description = "Running again from where it stopped: its dead, cancelled and skipped steps wait again, those whose needs all succeeded are dispatched; a succeeded step never runs twice", body = WorkflowView),
        (status = 404, description = "No such workflow of the caller's", body = ProblemBody),
        (status = 409, description = "It is running or completed (`not_retryable`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, workflow_id = %id))]
pub async fn retry(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(
        crate::service::workflows::control::retry(&state, &identity, &id).await?,
    ))
}
