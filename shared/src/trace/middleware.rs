//! The HTTP middleware every service runs: the request's trace context, and its server span
//! while traces are exported.

use axum::{
    extract::{MatchedPath, Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use opentelemetry::KeyValue;

use super::context::{generate, is_valid, scope, scope_with, HEADER};
use super::export;
use super::span::{Kind, Span};

/// Middleware of `service`: keeps a valid incoming `traceparent`, or starts a trace, and makes
/// it current. While traces are exported, the request is a server span (`{method} {route}`),
/// child of the incoming context, and the context passed on is that span's.
pub async fn middleware(
    State(service): State<&'static str>,
    mut request: Request,
    next: Next,
) -> Response {
    let incoming = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_string);
    let mut span = match export::enabled() {
        true => server_span(service, &request, incoming.as_deref()),
        false => Span::none(),
    };
    let traceparent = match span.traceparent() {
        Some(own) => own.to_string(),
        None => incoming.unwrap_or_else(generate),
    };
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        request.headers_mut().insert(HEADER, value);
    }
    let response = match span.tracer() {
        Some(tracer) => scope_with(traceparent, tracer, next.run(request)).await,
        None => scope(Some(traceparent), next.run(request)).await,
    };
    if span.is_recording() {
        let status = response.status();
        span.set(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.error(status.to_string());
        }
    }
    response
}

/// The server span of `request`, named by its route (the path only when no route matched).
fn server_span(service: &'static str, request: &Request, parent: Option<&str>) -> Span {
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let name = format!("{method} {}", route.as_deref().unwrap_or("unmatched"));
    let path = request.uri().path().to_string();
    Span::start_from(service, name, Kind::Server, parent, &[], || {
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.path", path),
        ];
        attributes.extend(route.map(|r| KeyValue::new("http.route", r)));
        attributes
    })
}
