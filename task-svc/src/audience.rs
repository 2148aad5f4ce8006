//! `POST /internal/v1/tasks/audience`: who may see each of some tasks now (owner, assignee,
//! channel members), for the gateway's live stream, which shows a user an event about a task
//! only if they are in its audience when the event is written to the stream log. Like
//! [`crate::access`], clients never reach it (the gateway routes only `/api/v1/...`), and it
//! answers only the gateway acting for nobody: a user's assertion is refused.

use std::collections::BTreeMap;

use axum::{extract::State, routing::post, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use shared::{internal::Caller, ApiError};
use uuid::Uuid;

use crate::AppState;

/// Most tasks one question may name.
pub const MAX_TASKS: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new().route("/internal/v1/tasks/audience", post(audience))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    pub task_ids: Vec<Uuid>,
}

/// Each existing task's audience, sorted; a task that is gone is absent.
#[derive(Debug, Serialize, Deserialize)]
pub struct Audiences {
    pub audiences: BTreeMap<Uuid, Vec<Uuid>>,
}

async fn audience(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(query): Json<AudienceQuery>,
) -> Result<Json<Audiences>, ApiError> {
    caller.require_gateway_itself("the gateway's stream")?;
    if query.task_ids.len() > MAX_TASKS {
        return Err(ApiError::bad_request(
            "too_many_tasks",
            format!("at most {MAX_TASKS} tasks per question"),
        ));
    }
    let rows: Vec<(Uuid, Vec<Uuid>)> = sqlx::query_as(
        "SELECT t.id,
                array_remove(ARRAY[t.owner_id, t.assignee_id]
                    || coalesce((SELECT array_agg(m.user_id) FROM channel_members m
                                  WHERE m.channel_id = t.channel_id), '{}'), NULL)
           FROM unnest($1::uuid[]) AS q(id) JOIN tasks t ON t.id = q.id",
    )
    .bind(&query.task_ids)
    .fetch_all(&state.pool)
    .await?;
    let audiences = rows
        .into_iter()
        .map(|(id, mut users)| {
            users.sort();
            users.dedup();
            (id, users)
        })
        .collect();
    Ok(Json(Audiences { audiences }))
}
