//! The reverse proxy: `/api/v1/<resource>` to the service that owns it.
//!
//! Protected routes need a valid bearer token; the verified identity travels to the service in
//! `x-taskmesh-user-id` / `x-taskmesh-role`, and any `x-taskmesh-*` header a client sent is
//! dropped first. A service that does not answer yields 503 naming it; the other routes keep
//! working, and the route recovers as soon as the service is back.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use shared::{
    identity::{HEADER_ROLE, HEADER_USER_ID, INTERNAL_HEADER_PREFIX},
    ApiError,
};

use crate::AppState;

/// Largest request body the gateway forwards.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Where a path goes and whether it needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub service: &'static str,
    pub public: bool,
}

/// The routing table. `None`: no such route.
pub fn route_for(path: &str) -> Option<Route> {
    let resource = path.strip_prefix("/api/v1/")?.split('/').next()?;
    let (service, public) = match resource {
        "auth" => ("user-svc", true),
        "users" => ("user-svc", false),
        "tasks" => ("task-svc", false),
        "notifications" => ("notify-svc", false),
        "media" => ("media-svc", false),
        _ => return None,
    };
    Some(Route { service, public })
}

pub async fn proxy(State(state): State<AppState>, request: Request) -> Response {
    match forward(&state, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn forward(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    let route = route_for(&path)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route"))?;
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.retain_internal();
    if !route.public {
        let token = bearer(&headers)
            .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))?;
        let verified = state.verifier.verify(token).await?;
        headers.insert(
            HeaderName::from_static(HEADER_USER_ID),
            HeaderValue::from_str(&verified.user_id.to_string()).map_err(ApiError::internal)?,
        );
        headers.insert(
            HeaderName::from_static(HEADER_ROLE),
            HeaderValue::from_str(&verified.role)
                .map_err(|_| ApiError::unauthorized("invalid access token"))?,
        );
    }
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            )
        })?;
    let base = state.upstream(route.service);
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let upstream = state
        .http
        .request(parts.method, format!("{base}{path}{query}"))
        .headers(headers)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|err| {
            tracing::warn!(service = route.service, error = %err, "upstream unavailable");
            if err.is_timeout() {
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("{} did not answer in time", route.service),
                )
            } else {
                ApiError::unavailable(route.service)
            }
        })?;
    let mut response = Response::builder().status(upstream.status());
    if let Some(out) = response.headers_mut() {
        for (name, value) in upstream.headers() {
            out.insert(name.clone(), value.clone());
        }
        strip_hop_by_hop(out);
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(ApiError::internal)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::HOST,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

trait RetainInternal {
    /// Drops every header only the gateway may set.
    fn retain_internal(&mut self);
}

impl RetainInternal for HeaderMap {
    fn retain_internal(&mut self) {
        let internal: Vec<HeaderName> = self
            .keys()
            .filter(|name| name.as_str().starts_with(INTERNAL_HEADER_PREFIX))
            .cloned()
            .collect();
        for name in internal {
            self.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_resources_to_services() {
        assert_eq!(
            route_for("/api/v1/auth/login"),
            Some(Route {
                service: "user-svc",
                public: true
            })
        );
        assert_eq!(route_for("/api/v1/tasks/abc").unwrap().service, "task-svc");
        assert!(!route_for("/api/v1/tasks").unwrap().public);
        assert_eq!(route_for("/api/v1/unknown"), None);
        assert_eq!(route_for("/internal"), None);
    }

    #[test]
    fn client_identity_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_USER_ID, HeaderValue::from_static("someone"));
        headers.insert("x-taskmesh-role", HeaderValue::from_static("admin"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.retain_internal();
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
