//! Serving a service's router: common layers and graceful shutdown.

use std::future::IntoFuture;
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
pub fn with_common_layers(
    router: Router,
    service: &'static str,
    request_timeout: Duration,
) -> Router {
    let request_id = http::HeaderName::from_static(REQUEST_ID);
    router
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(axum::middleware::from_fn_with_state(
            service,
            crate::trace::middleware,
        ))
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

/// The methods a metric names; any other is `other` (a client may send any token as a method,
/// and a label must take a bounded set of values).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn method_label(method: &axum::http::Method) -> &'static str {
    METHODS
        .iter()
        .find(|known| **known == method.as_str())
        .copied()
        .unwrap_or("other")
}

async fn record_metrics(req: Request<axum::body::Body>, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("taskmesh_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("taskmesh_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// How long a service waits, once shutdown starts, for its open connections to finish: under
/// Kubernetes' default grace of 30 s, so that what follows (consumers settling, the outbox) still
/// runs before the pod is killed.
pub const DRAIN: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until `shutdown`, then finishes in-flight requests for at most
/// [`DRAIN`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_draining(listener, router, shutdown, DRAIN).await
}

/// [`serve`] with its own drain deadline. Past it, the connections still open (a long upload, a
/// client that stopped reading its event stream) are closed and this returns.
async fn serve_draining(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> std::io::Result<()> {
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .into_future();
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        served = server => served,
        _ = deadline => {
            tracing::warn!(drain_secs = drain.as_secs_f64(), "connections still open after the drain deadline: closing them");
            Ok(())
        }
    }
}

/// Whether an `If-Match` or `If-None-Match` value (a list of entity tags, or `*`) names
/// `etag`. Tags compare by their opaque part, weak or strong (`W/"3"` names `"3"`).
pub fn etag_listed(list: &str, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    list.split(',')
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == "*" || v == etag)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::routing::get;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::Notify;

    use super::*;

    #[test]
    fn a_methods_label_is_one_of_the_standard_ones_or_other() {
        let custom = axum::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
        assert_eq!(method_label(&custom), "other");
    }

    #[test]
    fn an_etag_is_listed_weak_or_strong_or_by_a_star() {
        assert!(etag_listed("\"1\", \"3\"", "\"3\""));
        assert!(etag_listed("W/\"3\"", "\"3\""));
        assert!(etag_listed(" * ", "\"3\""));
        assert!(!etag_listed("\"33\"", "\"3\""));
        assert!(!etag_listed("", "\"3\""));
    }

    #[tokio::test]
    async fn a_request_that_never_ends_holds_shutdown_only_until_the_drain_deadline() {
        let entered = Arc::new(Notify::new());
        let handler_entered = entered.clone();
        let router = Router::new().route(
            "/hang",
            get(move || {
                let entered = handler_entered.clone();
                async move {
                    entered.notify_one();
                    std::future::pending::<()>().await
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let drain = Duration::from_millis(200);
        let server = tokio::spawn(serve_draining(listener, router, shutdown.clone(), drain));
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET /hang HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), entered.notified())
            .await
            .expect("the request reached its handler");

        shutdown.cancel();
        let served = tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("serve returned once its drain deadline passed");
        served.unwrap().unwrap();
    }
}
