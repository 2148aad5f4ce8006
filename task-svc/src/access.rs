//! `GET /internal/v1/tasks/{id}/access`: what the caller may do with a task, for services that
//! keep things on tasks (media-svc's attachments) and decide nothing about visibility
//! themselves. The gateway routes only `/api/v1/...`, so clients never reach this route, and it
//! answers only another service's assertion (decision 28), never one the gateway made.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Extension, Json, Router,
};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, internal::Caller, ApiError};
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/internal/v1/tasks/{id}/access", get(access))
}

/// What the caller may do: `read` (see it, its attachments), `edit` (change every field,
/// delete it, attach and delete files).
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskAccess {
    pub task_id: Uuid,
    pub read: bool,
    pub edit: bool,
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
    let mut conn = state.pool.acquire().await?;
    let (task, access) = crate::service::tasks::visible(&mut conn, &identity, &id, false).await?;
    Ok(Json(TaskAccess {
        task_id: task.id,
        read: access.read,
        edit: access.edit,
    }))
}
