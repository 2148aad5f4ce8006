//! Serving a service's router: common layers and graceful shutdown.

use std::time::{Duration, Instant};

use axum::{extract::MatchedPath, http::Request, middleware::Next, response::Response, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

/// Header carrying the request id from the gateway through every service.
pub const REQUEST_ID: &str = "x-request-id";

/// Adds request ids (kept when the caller sent one), W3C trace context, tracing, request metrics,
/// a timeout, and problem documents for every error answer.
pub fn with_common_layers(router: Router, request_timeout: Duration) -> Router {
    let request_id = http::HeaderName::from_static(REQUEST_ID);
    router
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(axum::middleware::from_fn(crate::trace::middleware))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        // Outside the timeout, so its 503 is a problem document too.
        .layer(axum::middleware::from_fn(crate::problem::problem_errors))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn record_metrics(req: Request<axum::body::Body>, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("taskmesh_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("taskmesh_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Serves `router` on `listener` until `shutdown`, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
