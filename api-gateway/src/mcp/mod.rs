//! The MCP server at `/mcp` (Model Context Protocol 2025-11-25, Streamable HTTP, the official
//! Rust SDK `rmcp`): AI agents use Taskmesh with a personal access token, as its owner, within
//! its scopes. Every tool is a call to this gateway's own REST API, made in-process with the
//! agent's token ([`rest`]): the same authorisation, scopes, validation, rate limits and
//! answers as any client's, and a refusal becomes a tool error with the problem's title.
//!
//! - [`tools`]: the tools, their input schemas taken from the API's own document
//!   ([`schemas`]), and what each one calls.
//! - [`tasks`]: a job created through MCP as an MCP Task, its state following the job's.
//! - [`content`]: resources (a task and a job by URI) and prompts.
//!
//! Served statelessly (no MCP session is kept between requests), so any gateway replica
//! answers any request; a Task is a job, kept by task-svc. Without a valid token the answer is
//! 401 with `WWW-Authenticate: Bearer resource_metadata=…`, pointing at the OAuth protected
//! resource metadata (RFC 9728) served at `/.well-known/oauth-protected-resource[/mcp]`.

pub mod content;
pub mod handler;
pub mod rest;
pub mod schemas;
pub mod tasks;
pub mod tools;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use serde_json::{json, Value};
use shared::{scopes::Scope, ApiError};

use crate::{admission::admit, client::client_ip, routes::Route, scopes::Need, AppState};

/// `/mcp` and the metadata that points clients at it; `api` is the gateway's own API, which the
/// tools call.
pub fn router(state: AppState, api: Router) -> Router {
    let handler = handler::Mcp::new(state.clone(), api);
    // Any `Host`: the check guards local servers that need no credentials against DNS
    // rebinding; this one needs a token a rebinding page cannot know, and is reached by many
    // names (a public URL, a Kubernetes service, localhost).
    let config = StreamableHttpServerConfig::default()
        .with_stateful_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let metadata = get(protected_resource).with_state(state.clone());
    // Bounded like any request through the gateway (rmcp reads a body whole).
    let limit = tower_http::limit::RequestBodyLimitLayer::new(crate::proxy::MAX_BODY_BYTES);
    Router::new()
        .nest_service("/mcp", service)
        .layer(limit)
        .layer(axum::middleware::from_fn_with_state(state, require_token))
        .route("/.well-known/oauth-protected-resource", metadata.clone())
        .route("/.well-known/oauth-protected-resource/mcp", metadata)
}

/// Where the metadata is, for the 401's challenge.
fn metadata_url(state: &AppState) -> String {
    let public = state.config.notifications.public_url.trim_end_matches('/');
    format!("{public}/.well-known/oauth-protected-resource/mcp")
}

/// RFC 9728: what protects `/mcp`. Taskmesh is not an OAuth authorization server: the token is
/// a personal access token made by its owner (`POST /api/v1/tokens`, the dashboard's Tokens
/// page), which `resource_documentation` explains.
async fn protected_resource(State(state): State<AppState>) -> Json<Value> {
    let public = state.config.notifications.public_url.trim_end_matches('/');
    Json(json!({
        "resource": format!("{public}/mcp"),
        "authorization_servers": [public],
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": "Taskmesh",
        "resource_documentation": format!("{public}/docs"),
    }))
}

/// Admits an MCP request only with a live personal access token (counted against its owner's
/// rate limit like any request); 401 with the metadata's address otherwise.
async fn require_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let challenge = format!("Bearer resource_metadata=\"{}\"", metadata_url(&state));
    let is_token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').map(|(_, t)| t.trim()))
        .is_some_and(shared::access_tokens::is_token);
    if !is_token {
        let refusal = ApiError::unauthorized(
            "the MCP endpoint needs a personal access token (tmk_…) as a bearer token",
        );
        return refusal.with_challenge(challenge).into_response();
    }
    let ip = client_ip(&state, request.headers(), peer);
    let route = Route::new(crate::SERVICE, false);
    match admit(&state, route, Need::Any, request.headers(), &ip, &mut None).await {
        Ok(_) => next.run(request).await,
        Err(err) if err.status == axum::http::StatusCode::UNAUTHORIZED => {
            err.with_challenge(challenge).into_response()
        }
        Err(err) => err.into_response(),
    }
}
