//! Calendar feeds over HTTP: `POST /api/v1/calendar/feed` (bearer) makes the caller's feed and
//! answers its address; `GET /api/v1/calendar/{secret}.ics` (no token: the secret is the key,
//! as calendar apps fetch it) answers it as `text/calendar`.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::IntoResponse,
    Json,
};
use serde::Serialize;
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{service::calendar, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_feed))
        .routes(routes!(feed))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Feed {
    /// The feed's address, for any calendar app: it needs no token, so keep it private. A new
    /// feed replaces it.
    pub url: String,
}

#[utoipa::path(post, path = "/api/v1/calendar/feed", tag = "calendar", security(("bearer" = [])),
    responses((status = 201, description = "A new feed of the caller's tasks that have a due date; the previous feed's address stops working", body = Feed)))]
pub async fn create_feed(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<(StatusCode, Json<Feed>), ApiError> {
    let url = calendar::create_feed(&state, &identity).await?;
    Ok((StatusCode::CREATED, Json(Feed { url })))
}

#[utoipa::path(get, path = "/api/v1/calendar/{file}", tag = "calendar",
    params(("file" = String, Path, description = "`<secret>.ics`, from the feed's address")),
    responses((status = 200, description = "The feed's person's tasks that have a due date (owned or assigned, the latest due first, at most 2,000) as iCalendar to-dos", content_type = "text/calendar", body = String),
        (status = 404, description = "No such feed (replaced, never made, or its person deactivated)", body = ProblemBody)))]
pub async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let body = calendar::feed(&state, &file).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
        (header::CACHE_CONTROL, "private, no-cache"),
    ];
    Ok((headers, body))
}
