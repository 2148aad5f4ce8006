//! The reverse proxy: `/api/v1/<resource>` to the service that owns it.
//!
//! Protected routes need a valid bearer token; the verified identity travels to the service in an
//! assertion the gateway signs for that one request (`x-taskmesh-assertion`, decision 28), and
//! any `x-taskmesh-*` header a client sent is dropped first. A service that does not answer
//! yields 503 naming it; the other routes keep working, and the route recovers as soon as the
//! service is back. Routes are in [`crate::routes`], admission (token, session, rate limit) in
//! [`crate::admission`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderName, Method, StatusCode},
    response::{IntoResponse, Response},
};
use shared::{
    identity::INTERNAL_HEADER_PREFIX,
    internal::{Caller, Payload, HEADER_ASSERTION, HEADER_REFUSED},
    ApiError,
};

use crate::admission::admit;
use crate::idempotency;
use crate::ratelimit::Decision;
use crate::routes::{is_ambiguous, route_for_request, Route};
use crate::AppState;

/// Largest request body the gateway forwards.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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

/// Writes the assertion for one request to `url` on `service` with `payload` as its body
/// (decisions 28 and 37): for the path and query exactly as the service will see them (the URL
/// percent-encodes what the request line carried raw).
fn write_assertion(
    state: &AppState,
    service: &str,
    method: &Method,
    url: &reqwest::Url,
    payload: Payload<'_>,
    caller: &Caller,
    headers: &mut HeaderMap,
) {
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let value = state.trust.mint(service, method, &target, payload, caller);
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
    let needs = crate::scopes::need(&parts.method, &path);
    let (subject, caller) = admit(state, route, needs, &headers, &ip, decision).await?;
    let url = upstream_url(state, route.service, &parts.uri)?;
    // The service trusts the assertion; the client's token goes no further than the gateway.
    headers.remove(header::AUTHORIZATION);
    let sign = |payload: Payload<'_>, headers: &mut HeaderMap| {
        write_assertion(
            state,
            route.service,
            &parts.method,
            &url,
            payload,
            &caller,
            headers,
        )
    };
    if route.streamed {
        // The service sees the length the client declared, to refuse an oversized upload at
        // once; hyper holds the body to it, and the assertion binds it.
        let declared = length
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = length {
            headers.insert(header::CONTENT_LENGTH, length);
        }
        // A download has no body: bound as empty, like any GET.
        let payload = match parts.method == Method::GET || parts.method == Method::HEAD {
            true => Payload::EMPTY,
            false => Payload::Streamed { length: declared },
        };
        sign(payload, &mut headers);
        return forward_streamed(state, route, parts.method, url, headers, body).await;
    }
    let body = read_body(body).await?;
    sign(Payload::Bytes(&body), &mut headers);
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
    let method_is_safe = parts.method.is_safe();
    let upstream = state
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|err| upstream_error(route.service, &err))
        .and_then(|answer| not_refused(route.service, answer));
    if route.service == "user-svc" && !method_is_safe {
        // It may have ended sessions (a logout, a deactivation), even if its answer was lost:
        // this gateway's next requests ask Redis, which knows already, without waiting to hear
        // of it.
        state.known.forget();
    }
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
        .map_err(|err| upstream_error(route.service, &err))
        .and_then(|answer| not_refused(route.service, answer))?;
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

/// `answer`, unless it is the service refusing the gateway's own assertion: the deployment's
/// fault (a clock off, parts of two versions, keys that do not match), not the client's, so a
/// 502 naming the service rather than a 401 a client would take for its token.
fn not_refused(service: &str, answer: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    if answer.status() != StatusCode::UNAUTHORIZED || !answer.headers().contains_key(HEADER_REFUSED)
    {
        return Ok(answer);
    }
    tracing::error!(
        service,
        "the service refused the gateway's assertion: check that its clock, version and keys match the gateway's"
    );
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_refused",
        format!("{service} refused the gateway's credentials (a deployment fault; the operator is told)"),
    ))
}

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
    fn a_service_refusing_the_gateways_assertion_is_a_502_not_a_401() {
        let answer = |refused: bool| {
            let mut answer = axum::http::Response::builder().status(StatusCode::UNAUTHORIZED);
            if refused {
                answer = answer.header(HEADER_REFUSED, "assertion");
            }
            reqwest::Response::from(answer.body("{}").unwrap())
        };
        let err = not_refused("task-svc", answer(true)).err().unwrap();
        assert_eq!(err.status, StatusCode::BAD_GATEWAY);
        // A 401 of the service's own (a wrong password) reaches the client as it is.
        let passed = not_refused("user-svc", answer(false)).unwrap();
        assert_eq!(passed.status(), StatusCode::UNAUTHORIZED);
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
}
