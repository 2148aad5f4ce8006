//! The reverse proxy: `/api/v1/<resource>` to the service that owns it.
//!
//! Protected routes need a valid bearer token; the verified identity travels to the service in an
//! assertion the gateway signs for that one request (`x-taskmesh-assertion`, decision 28), and
//! any `x-taskmesh-*` header a client sent is dropped first. A service that does not answer yields 503 naming it; the other routes keep
//! working, and the route recovers as soon as the service is back.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderName, Method, StatusCode},
    response::{IntoResponse, Response},
};
use shared::{
    identity::{Identity, INTERNAL_HEADER_PREFIX},
    internal::{Caller, HEADER_ASSERTION},
    ApiError,
};

use crate::idempotency;
use crate::ratelimit::{self, Decision, Policy};
use crate::AppState;

/// Largest request body the gateway forwards.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Where a path goes and whether it needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub service: &'static str,
    pub public: bool,
    /// Uploads and downloads of files: the body streams through in both directions (never read
    /// whole, so not limited to [`MAX_BODY_BYTES`] here; the service enforces its own limits),
    /// with no overall time limit, and `Idempotency-Key` is not replayed.
    pub streamed: bool,
    /// A signed download link: public, its signature checked by the service, and counted per
    /// client address against the API limit (not the tighter limit of the auth routes).
    pub signed: bool,
    /// The answers carry credentials (the auth routes' tokens): `Idempotency-Key` is ignored, so
    /// that no token is ever kept in the idempotency cache.
    pub credentials: bool,
}

impl Route {
    pub const fn new(service: &'static str, public: bool) -> Self {
        Self {
            service,
            public,
            streamed: false,
            signed: false,
            credentials: false,
        }
    }
}

/// The routing table. `None`: no such route.
pub fn route_for(path: &str) -> Option<Route> {
    let mut segments = path.strip_prefix("/api/v1/")?.split('/');
    let resource = segments.next()?;
    let route = match resource {
        "auth" => {
            // Only getting a session needs no token; logout does.
            let action = segments.next().unwrap_or("");
            Route {
                credentials: true,
                ..Route::new(
                    "user-svc",
                    matches!(action, "register" | "login" | "refresh"),
                )
            }
        }
        // Job administration lives with the jobs, file administration with the files; the
        // rest of admin with the users.
        "admin" => match segments.next() {
            Some("jobs" | "pools") => Route::new("task-svc", false),
            Some("media") => Route::new("media-svc", false),
            _ => Route::new("user-svc", false),
        },
        "users" => Route::new("user-svc", false),
        // A task's attachments are media-svc's (exactly `tasks/{id}/attachments`).
        "tasks" if is_shape(path, &["tasks", "*", "attachments"]) => Route {
            streamed: true,
            ..Route::new("media-svc", false)
        },
        "tasks" | "channels" | "workers" => Route::new("task-svc", false),
        // The unsubscribe link in every mail works without logging in (its token is signed).
        "notifications" => Route::new("notify-svc", segments.next() == Some("unsubscribe")),
        "webhooks" => Route::new("notify-svc", false),
        "media" => Route {
            streamed: is_shape(path, &["media", "*", "content"]),
            ..Route::new("media-svc", false)
        },
        _ => return None,
    };
    Some(route)
}

/// Whether `path` (under `/api/v1/`) has exactly these segments, `*` standing for any one.
fn is_shape(path: &str, shape: &[&str]) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    segments.len() == shape.len()
        && segments
            .iter()
            .zip(shape)
            .all(|(segment, want)| (*want == "*" && !segment.is_empty()) || segment == want)
}

/// Whether a path could name something else once an upstream resolves it: a `.` or `..`
/// segment, a backslash (which URL parsers read as a slash), or an encoded dot, slash or
/// backslash (`%2e`, `%2f`, `%5c`). Such paths are refused before routing, so that no route can
/// be walked out of.
pub fn is_ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.split('/').any(|s| s == "." || s == "..")
        || path.contains('\\')
        || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
}

/// The route of a request: [`route_for`] its path, and a download that carries a `signature`
/// in its query (a link from `GET /api/v1/media/{id}/link`) needs no token.
pub fn route_for_request(path: &str, query: Option<&str>) -> Option<Route> {
    let mut route = route_for(path)?;
    let signed = route.service == "media-svc"
        && is_shape(path, &["media", "*", "content"])
        && query.is_some_and(|q| q.split('&').any(|p| p.starts_with("signature=")));
    if signed {
        route.public = true;
        route.signed = true;
    }
    Some(route)
}

pub async fn proxy(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let mut limit = None;
    let mut response = match forward(&state, peer, request, &mut limit).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    if let Some(decision) = limit {
        decision.write_headers(response.headers_mut());
    }
    response
}

/// Counts the request and checks its session in one Redis round trip (401 ended, 429 past the
/// limit); without Redis, it is not counted and [`crate::sessions`] checks the session.
async fn limit(
    state: &AppState,
    policy: Policy,
    subject: &str,
    session: Option<uuid::Uuid>,
    decision: &mut Option<Decision>,
) -> Result<(), ApiError> {
    let prefix = &state.config.redis.key_prefix;
    let session_key = session.map(|s| shared::sessions::key(prefix, s));
    match ratelimit::check(
        &state.redis,
        prefix,
        policy,
        subject,
        session_key.as_deref(),
    )
    .await
    {
        ratelimit::Outcome::SessionEnded => Err(crate::sessions::ended()),
        ratelimit::Outcome::Unavailable => {
            crate::sessions::check_without_redis(state, session).await
        }
        ratelimit::Outcome::Counted(d) => {
            *decision = Some(d);
            if d.allowed {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "more than {} requests in {} seconds",
                        d.policy.limit, d.policy.window_secs
                    ),
                )
                .with_retry_after(d.reset_secs))
            }
        }
    }
}

/// Checks limits and identity for `route`. Returns the subject the request counts for and the
/// caller the services are told of (in the assertion [`write_assertion`] writes).
pub(crate) async fn admit(
    state: &AppState,
    route: Route,
    headers: &HeaderMap,
    ip: &str,
    decision: &mut Option<Decision>,
) -> Result<(String, Caller), ApiError> {
    let limits = &state.config.rate_limit;
    if route.public {
        let policy = match route.signed {
            true => Policy {
                name: "signed",
                limit: limits.api_requests,
                window_secs: limits.window_secs,
            },
            false => Policy {
                name: "auth",
                limit: limits.auth_requests,
                window_secs: limits.window_secs,
            },
        };
        let source = shared::identity::source_of(ip);
        limit(state, policy, &source, None, decision).await?;
        let caller = Caller::anonymous(crate::SERVICE, Some(ip.to_string()));
        Ok((format!("ip:{source}"), caller))
    } else {
        let token = bearer(headers)
            .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))?;
        let verified = state.verifier.verify(token).await?;
        let policy = Policy {
            name: "api",
            limit: limits.api_requests,
            window_secs: limits.window_secs,
        };
        let user = verified.user_id.to_string();
        limit(state, policy, &user, Some(verified.session_id), decision).await?;
        let identity = Identity {
            user_id: verified.user_id,
            role: verified.role,
            session_id: Some(verified.session_id),
        };
        let caller = Caller::user(crate::SERVICE, identity, Some(ip.to_string()));
        Ok((format!("user:{user}"), caller))
    }
}

/// Writes the assertion for one request to `service` (decision 28).
pub(crate) fn write_assertion(
    state: &AppState,
    service: &str,
    method: &Method,
    path: &str,
    caller: &Caller,
    headers: &mut HeaderMap,
) {
    let value = state.trust.mint(service, method, path, caller);
    headers.insert(HeaderName::from_static(HEADER_ASSERTION), value);
}

async fn forward(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    decision: &mut Option<Decision>,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_string();
    if is_ambiguous(&path) {
        return Err(ApiError::bad_request(
            "invalid_path",
            "paths must not contain `.` or `..` segments or encoded dots or slashes",
        ));
    }
    let route = route_for_request(&path, request.uri().query())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route"))?;
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    let ip = crate::client::client_ip(state, &headers, peer);
    let length = headers.get(header::CONTENT_LENGTH).cloned();
    strip_hop_by_hop(&mut headers);
    headers.retain_internal();
    let (subject, caller) = admit(state, route, &headers, &ip, decision).await?;
    let url = upstream_url(state, route.service, &parts.uri)?;
    // For the path exactly as the service will see it (the URL percent-encodes what the
    // request line carried raw).
    let method = &parts.method;
    write_assertion(
        state,
        route.service,
        method,
        url.path(),
        &caller,
        &mut headers,
    );
    // The service trusts the assertion; the client's token goes no further than the gateway.
    headers.remove(header::AUTHORIZATION);
    if route.streamed {
        // The service sees the length the client declared, to refuse an oversized upload at
        // once; hyper holds the body to it.
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, length);
        }
        return forward_streamed(state, route, parts.method, url, headers, body).await;
    }
    let body = read_body(body).await?;
    let idempotency_key = if parts.method == Method::POST && !route.credentials {
        idempotency::key_of(&headers)?
    } else {
        None
    };
    let guard = match idempotency_key {
        None => None,
        Some(key) => {
            let scope = format!("{subject} {path}");
            match idempotency::begin(state, &scope, &key, &body).await? {
                idempotency::Begin::Replay(response) => return Ok(response),
                idempotency::Begin::Proceed(guard) => Some(guard),
            }
        }
    };
    let upstream = state
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|err| upstream_error(route.service, &err));
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(err) => {
            if let Some(guard) = guard {
                guard
                    .finish(err.status, &HeaderMap::new(), &Default::default())
                    .await;
            }
            return Err(err);
        }
    };
    let status = upstream.status();
    let mut upstream_headers = upstream.headers().clone();
    strip_hop_by_hop(&mut upstream_headers);
    let body = match guard {
        // Kept for replays: read it whole (service answers are small JSON documents).
        Some(guard) => {
            let bytes = upstream
                .bytes()
                .await
                .map_err(|err| upstream_error(route.service, &err))?;
            guard.finish(status, &upstream_headers, &bytes).await;
            Body::from(bytes)
        }
        None => Body::from_stream(upstream.bytes_stream()),
    };
    let mut response = Response::builder()
        .status(status)
        .body(body)
        .map_err(ApiError::internal)?;
    *response.headers_mut() = upstream_headers;
    Ok(response)
}

/// The service's URL for a request to `uri` on the gateway.
fn upstream_url(
    state: &AppState,
    service: &str,
    uri: &axum::http::Uri,
) -> Result<reqwest::Url, ApiError> {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path_and_query}", state.upstream(service));
    reqwest::Url::parse(&url)
        .map_err(|_| ApiError::bad_request("invalid_path", "this path cannot be forwarded"))
}

/// Forwards a file upload or download, streaming the body both ways.
async fn forward_streamed(
    state: &AppState,
    route: Route,
    method: Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let upstream = state
        .http
        .request(method, url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await
        .map_err(|err| upstream_error(route.service, &err))?;
    let status = upstream.status();
    let mut upstream_headers = upstream.headers().clone();
    let length = upstream_headers.get(header::CONTENT_LENGTH).cloned();
    strip_hop_by_hop(&mut upstream_headers);
    // A download keeps its length, so clients show progress.
    if let Some(length) = length {
        upstream_headers.insert(header::CONTENT_LENGTH, length);
    }
    let mut response = Response::builder()
        .status(status)
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(ApiError::internal)?;
    *response.headers_mut() = upstream_headers;
    Ok(response)
}

/// Reads the request body up to [`MAX_BODY_BYTES`]. A larger body is read on (and dropped) up to
/// [`DRAIN_BYTES`] before the 413, so the client, still uploading, receives the answer instead of
/// a reset connection.
async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    use futures::StreamExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        })?;
        seen += chunk.len();
        if seen > DRAIN_BYTES {
            break;
        }
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(kept.into())
}

/// How much of an oversized body the gateway reads before answering 413.
const DRAIN_BYTES: usize = 16 * MAX_BODY_BYTES;

/// 504 when the service was too slow, 503 naming it when it could not be reached.
pub(crate) fn upstream_error(service: &str, err: &reqwest::Error) -> ApiError {
    tracing::warn!(service, error = %err, "upstream unavailable");
    if err.is_timeout() {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!("{service} did not answer in time"),
        )
    } else {
        ApiError::unavailable(service)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

pub(crate) trait RetainInternal {
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
    use axum::http::HeaderValue;

    #[test]
    fn routes_map_resources_to_services() {
        let login = route_for("/api/v1/auth/login").unwrap();
        assert_eq!(
            (login.service, login.public, login.credentials),
            ("user-svc", true, true)
        );
        assert_eq!(route_for("/api/v1/tasks/abc").unwrap().service, "task-svc");
        assert_eq!(route_for("/api/v1/workers").unwrap().service, "task-svc");
        assert_eq!(
            route_for("/api/v1/admin/jobs/dead").unwrap().service,
            "task-svc"
        );
        assert_eq!(route_for("/api/v1/admin/keys").unwrap().service, "user-svc");
        assert!(!route_for("/api/v1/tasks").unwrap().public);
        assert!(
            route_for("/api/v1/notifications/unsubscribe")
                .unwrap()
                .public
        );
        assert!(
            !route_for("/api/v1/notifications/preferences")
                .unwrap()
                .public
        );
        assert_eq!(
            route_for("/api/v1/webhooks/x").unwrap().service,
            "notify-svc"
        );
        let attachments = route_for("/api/v1/tasks/abc/attachments").unwrap();
        assert_eq!(
            (attachments.service, attachments.streamed),
            ("media-svc", true)
        );
        assert!(!route_for("/api/v1/tasks/abc/history").unwrap().streamed);
        assert!(route_for("/api/v1/media/abc/content").unwrap().streamed);
        assert!(!route_for("/api/v1/media/abc").unwrap().streamed);
        assert_eq!(
            route_for("/api/v1/admin/media/sweep").unwrap().service,
            "media-svc"
        );
        let signed = route_for_request("/api/v1/media/abc/content", Some("expires=1&signature=x"));
        assert!(signed.unwrap().public && signed.unwrap().signed);
        assert!(
            !route_for_request("/api/v1/media/abc/content", Some("x=1"))
                .unwrap()
                .public
        );
        assert!(
            !route_for_request("/api/v1/media/abc", Some("signature=x"))
                .unwrap()
                .public
        );
        assert_eq!(route_for("/api/v1/unknown"), None);
        assert_eq!(route_for("/internal"), None);
    }

    #[test]
    fn paths_that_could_walk_out_of_their_route_are_ambiguous() {
        for path in [
            "/api/v1/media/x/content/../../../metrics",
            "/api/v1/media/x/content/%2e%2e/%2E%2E/metrics",
            "/api/v1/tasks/./x",
            "/api/v1/tasks/a%2Fb",
            "/api/v1/tasks/a%5cb",
            "/api/v1/tasks/x\\..\\..\\metrics",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        assert!(!is_ambiguous("/api/v1/tasks/01a2-b/history"));
        assert!(!is_ambiguous("/api/v1/media/x.y/content"));
    }

    #[test]
    fn client_identity_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("x-taskmesh-user-id", HeaderValue::from_static("someone"));
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
