//! The live stream: `GET /api/v1/events/stream` (`text/event-stream`) sends a signed-in user
//! every event they may see as it happens, resumable with `Last-Event-ID`. Opened with a
//! single-use ticket (`POST /api/v1/events/ticket`, for browsers' `EventSource`) or a bearer
//! token (programs).
//!
//! - [`feed`]: one gateway at a time appends the bus's events to the log, with their audience.
//! - [`log`]: the log, a Redis stream kept for `stream.retention_secs`.
//! - [`hub`]: every gateway reads the log and hands entries to its own streams; per-user
//!   stream leases.
//! - [`ticket`]: the tickets.
//! - [`session`]: one stream from opening to end.
//! - [`stats`]: the admins' `stats` event (pools and workers every 5 s).

pub mod feed;
pub mod hub;
pub mod log;
mod session;
pub mod stats;
pub mod ticket;

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};

use crate::admission::admit;
use crate::client::client_ip;
use crate::proxy::RetainInternal;
use crate::routes::Route;
use crate::scopes::Need;
use crate::AppState;

/// The stream's routes in the API description (merged by [`crate::docs`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(issue_ticket, open),
    components(schemas(Ticket, StreamEvent)),
    tags((name = "events", description = "Live events (server-sent events)"))
)]
pub struct StreamDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events/ticket", post(issue_ticket))
        .route("/api/v1/events/stream", get(open))
}

/// One event of `GET /api/v1/events/stream`, as its server-sent-event fields arrive (OpenAPI
/// 3.1 has no `itemSchema`, so this is the response's `schema`, which contract checkers such as
/// schemathesis apply to each event). Documentation only: the stream writes the fields itself.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StreamEvent {
    /// `ready` first; then each event's type (`task.created`, `job.finished`, ...); `reset` when
    /// events were lost to the retention window; `stats` every 5 s for an admin who asked;
    /// `session_ended` last, when the session ended (sign in again).
    #[schema(min_length = 1, max_length = 64)]
    event: String,
    /// The event's place in the log, to resume from with `Last-Event-ID` (on `ready`, the newest
    /// event at opening; none on `reset`, `stats` and `session_ended`).
    #[schema(max_length = 48)]
    id: Option<String>,
    /// JSON text: the CloudEvent; on `ready` `{"last_event_id", "resumed"}`; on `reset`
    /// `{"reason"}`; on `stats` the pools' depths and the workers; on `session_ended` `{}`.
    #[schema(content_media_type = "application/json")]
    data: String,
    /// On `ready`: milliseconds a client waits before reconnecting.
    retry: Option<u64>,
}

/// A ticket for one stream.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Pass as `?ticket=` to `GET /api/v1/events/stream`; works once.
    pub ticket: String,
    /// Seconds left to use it.
    pub expires_in: u64,
}

fn redis_down(err: redis::RedisError) -> ApiError {
    tracing::warn!(error = %err, "stream: redis unavailable");
    ApiError::unavailable("redis")
}

/// The caller of a gateway-local route, as the proxy admits callers: bearer token, session
/// check and the API rate limit.
async fn bearer_identity(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Identity, ApiError> {
    let ip = client_ip(state, headers, peer);
    let mut headers = headers.clone();
    headers.retain_internal();
    let (_, caller) = admit(
        state,
        Route::new(crate::SERVICE, false),
        crate::scopes::need(&axum::http::Method::POST, "/api/v1/events/ticket"),
        &headers,
        &ip,
        &mut None,
    )
    .await?;
    caller
        .identity
        .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))
}

#[utoipa::path(post, path = "/api/v1/events/ticket", tag = "events", security(("bearer" = [])),
    responses((status = 200, description = "A single-use ticket to open a stream with", body = Ticket),
        (status = 401, description = "No valid access token", body = ProblemBody),
        (status = 503, description = "Redis is unavailable", body = ProblemBody)))]
pub async fn issue_ticket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Ticket>, ApiError> {
    let identity = bearer_identity(&state, &headers, peer).await?;
    let session = identity
        .session_id
        .ok_or_else(|| ApiError::unauthorized("a ticket is for a signed-in session"))?;
    let ttl = state.config.stream.ticket_secs;
    let prefix = &state.config.redis.key_prefix;
    let for_whom = (&identity, session);
    let ticket = ticket::issue(&state.redis, prefix, &state.tickets, for_whom, ttl)
        .await
        .map_err(redis_down)?;
    Ok(Json(Ticket {
        ticket,
        expires_in: ttl,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpenQuery {
    /// A ticket from `POST /api/v1/events/ticket` (instead of a bearer token).
    #[param(max_length = 64)]
    pub ticket: Option<String>,
    /// Resume after this event (as the `Last-Event-ID` header does; the header wins).
    #[param(max_length = 48)]
    pub last_event_id: Option<String>,
    /// Admins: also a `stats` event every 5 seconds (pools' depth, workers).
    pub stats: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", security((), ("bearer" = [])),
    params(OpenQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "Server-sent events: `ready` first, then each event the caller may see (`id` to resume from, `event` its type, `data` the CloudEvent); `reset` when events were lost to the retention window (reload, then carry on)", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, description = "A malformed `Last-Event-ID`", body = ProblemBody),
        (status = 403, description = "`stats` asked for by someone who is not an admin", body = ProblemBody),
        (status = 401, description = "No valid ticket or access token, or a ticket already used", body = ProblemBody),
        (status = 429, description = "The user has `stream.max_streams_per_user` streams open (`too_many_streams`), or the client's address `stream.max_streams_per_address` (`too_many_streams_from_address`)", body = ProblemBody),
        (status = 503, description = "Redis is unavailable, or this gateway holds `stream.max_streams` streams (`streams_full`)", body = ProblemBody)))]
pub async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<OpenQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let prefix = &state.config.redis.key_prefix;
    let ip = client_ip(&state, &headers, peer);
    let identity = match &query.ticket {
        Some(ticket) => {
            // Counted per client address like the signed download links: redeeming costs a
            // Redis call, and the caller is not known yet.
            let route = Route {
                signed: true,
                ..Route::new(crate::SERVICE, true)
            };
            admit(&state, route, Need::Any, &headers, &ip, &mut None).await?;
            let identity = ticket::redeem(&state.redis, prefix, &state.tickets, ticket)
                .await
                .map_err(redis_down)?
                .ok_or_else(|| ApiError::unauthorized("this ticket is unknown, expired or used"))?;
            if let Some(session) = identity.session_id {
                let live = shared::sessions::is_live(&state.redis, prefix, session)
                    .await
                    .map_err(redis_down)?;
                if !live {
                    return Err(crate::sessions::ended());
                }
            }
            identity
        }
        None => bearer_identity(&state, &headers, peer).await?,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.last_event_id.clone())
        .filter(|id| !id.is_empty());
    if resume
        .as_deref()
        .is_some_and(|id| log::parse_id(id).is_none())
    {
        return Err(ApiError::bad_request(
            "invalid_last_event_id",
            "Last-Event-ID must be an id this stream sent (`<ms>-<seq>`)",
        ));
    }
    let stats = query.stats.unwrap_or(false);
    if stats {
        identity.require_admin()?;
    }
    let stream = session::Session::open(&state, identity, &ip, resume, stats).await?;
    let mut response = stream.into_response();
    let headers = response.headers_mut();
    headers.insert("cache-control", "no-cache".parse().expect("static"));
    // Reverse proxies (nginx, the ingress controller) must pass events on as they come.
    headers.insert("x-accel-buffering", "no".parse().expect("static"));
    Ok(response)
}
