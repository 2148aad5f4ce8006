//! Routes for other services, never for clients (the gateway routes only `/api/v1/...`):
//!
//! - `GET /internal/v1/tasks/{id}/access`: what the user a service acts for may do with a task
//!   (media-svc asks before storing or serving a task's files). Only another service asks it:
//!   the gateway's own assertion is refused.
//! - `POST /internal/v1/tasks/audience`: who may see each of some tasks now (owner, assignee,
//!   channel members), for the gateway's live stream, which shows a user an event about a task
//!   only if they are in its audience when the event is written to the stream log. It answers
//!   only the gateway acting for nobody: a user's assertion is refused.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json,
};
use shared::{
    identity::Identity,
    internal::Caller,
    tasks_api::{
        AudienceQuery, Audiences, TaskAccess, ACCESS_ROUTE, AUDIENCE_PATH, MAX_AUDIENCE_TASKS,
    },
    ApiError,
};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route(ACCESS_ROUTE, get(access))
        .route(AUDIENCE_PATH, post(audience))
}

/// 200 with the caller's rights, 404 when the caller may not see the task (or it is gone).
async fn access(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<TaskAccess>, ApiError> {
    if caller.service == "api-gateway" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "internal_route",
            "this route answers other services only",
        ));
    }
    let (task, access) = crate::service::tasks::access_of(&state, &identity, &id).await?;
    Ok(Json(TaskAccess {
        task_id: task.id,
        read: access.read,
        edit: access.edit,
    }))
}

async fn audience(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(query): Json<AudienceQuery>,
) -> Result<Json<Audiences>, ApiError> {
    caller.require_gateway_itself("the gateway's stream")?;
    if query.task_ids.len() > MAX_AUDIENCE_TASKS {
        return Err(ApiError::bad_request(
            "too_many_tasks",
            format!("at most {MAX_AUDIENCE_TASKS} tasks per question"),
        ));
    }
    let rows = crate::service::tasks::audiences(&state, &query.task_ids).await?;
    Ok(Json(Audiences {
        audiences: rows.into_iter().collect(),
    }))
}
