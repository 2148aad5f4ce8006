//! `POST /internal/v1/sessions/live` ([`shared::sessions::LIVE_PATH`]): which of some sessions
//! are live, from PostgreSQL (the source of truth), for the gateway while Redis (the sessions'
//! mirror, its usual check) cannot be asked: a session ended before Redis went away stays ended.
//! Clients never reach it (the gateway routes only `/api/v1/...`), and it answers only the
//! gateway acting for nobody.

use axum::{extract::State, routing::post, Extension, Json};
use shared::{
    internal::Caller,
    sessions::{Live, LiveQuery, LIVE_PATH},
    ApiError,
};
use utoipa_axum::router::OpenApiRouter;

use crate::{service::sessions, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().route(LIVE_PATH, post(live))
}

async fn live(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(query): Json<LiveQuery>,
) -> Result<Json<Live>, ApiError> {
    caller.require_gateway_itself("the gateway's session check")?;
    let live = sessions::live_among(&state, &query.session_ids).await?;
    Ok(Json(Live { live }))
}
