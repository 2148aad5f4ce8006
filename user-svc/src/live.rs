//! `POST /internal/v1/sessions/live`: which of some sessions are live, from PostgreSQL (the
//! source of truth), for the gateway while Redis (the sessions' mirror, its usual check) cannot
//! be asked: a session ended before Redis went away stays ended. Clients never reach it (the
//! gateway routes only `/api/v1/...`), and it answers only the gateway acting for nobody.

use axum::{extract::State, routing::post, Extension, Json, Router};
use serde::{Deserialize, Serialize};
use shared::{internal::Caller, ApiError};
use uuid::Uuid;

use crate::AppState;

/// The route's path.
pub const PATH: &str = "/internal/v1/sessions/live";

/// Most sessions one question may name.
pub const MAX_SESSIONS: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(live))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    pub session_ids: Vec<Uuid>,
}

/// The named sessions that are live: not ended, not expired, their user active.
#[derive(Debug, Serialize, Deserialize)]
pub struct Live {
    pub live: Vec<Uuid>,
}

async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(query): Json<LiveQuery>,
) -> Result<Json<Live>, ApiError> {
    caller.require_gateway_itself("the gateway's session check")?;
    if query.session_ids.len() > MAX_SESSIONS {
        return Err(ApiError::bad_request(
            "too_many_sessions",
            format!("at most {MAX_SESSIONS} sessions per question"),
        ));
    }
    let live = sqlx::query_scalar(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = ANY($1) AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active",
    )
    .bind(&query.session_ids)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Live { live }))
}
