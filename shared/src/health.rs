//! `/healthz` (the process is alive), `/readyz` (every dependency answers; 503 naming those
//! that do not) and `/metrics` (Prometheus text), mounted by every service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures::future::BoxFuture;
use serde_json::json;

use crate::broker::Broker;
use crate::problem::ApiError;

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies a service needs to serve.
#[derive(Clone, Default)]
pub struct Readiness {
    service: &'static str,
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// The service these checks are of.
    pub fn service(&self) -> &'static str {
        self.service
    }

    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            checks: Vec::new(),
        }
    }

    /// Adds a named check.
    pub fn check<F, Fut, E>(mut self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let check: Check = Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        });
        self.checks.push((name, check));
        self
    }

    pub fn postgres(self, pool: sqlx::PgPool) -> Self {
        self.check("postgres", move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()) }
        })
    }

    pub fn rabbitmq(self, broker: Broker) -> Self {
        self.check("rabbitmq", move || {
            let broker = broker.clone();
            async move { broker.ping().await }
        })
    }

    pub fn redis(self, conn: redis::aio::ConnectionManager) -> Self {
        self.check("redis", move || {
            let conn = conn.clone();
            async move { crate::cache::ping(&conn).await }
        })
    }

    /// Runs every check at once, each bounded by two seconds.
    pub async fn report(&self) -> BTreeMap<&'static str, Result<(), String>> {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(Duration::from_secs(2), check()).await {
                Ok(result) => result,
                Err(_) => Err("timed out after 2s".to_string()),
            };
            (*name, outcome)
        });
        futures::future::join_all(runs).await.into_iter().collect()
    }
}

/// `GET /openapi.json`: this service's part of the API description (the gateway merges them),
/// with the answers every operation shares ([`crate::openapi::service_document`]).
pub fn openapi_router(doc: utoipa::openapi::OpenApi) -> Router {
    let doc = Arc::new(crate::openapi::service_document(doc));
    Router::new().route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc) }
        }),
    )
}

/// The three operational routes.
pub fn router(readiness: Readiness) -> Router {
    // Install the recorder now, so metrics recorded before the first scrape are kept.
    crate::telemetry::metrics();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(readiness))
}

async fn healthz(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "service": readiness.service }))
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    let report = readiness.report().await;
    let failing: Vec<String> = report
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name} ({e})")))
        .collect();
    let checks: BTreeMap<_, _> = report
        .iter()
        .map(|(name, r)| (*name, if r.is_ok() { "ok" } else { "unavailable" }))
        .collect();
    if failing.is_empty() {
        Json(json!({ "status": "ready", "service": readiness.service, "checks": checks }))
            .into_response()
    } else {
        let error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("unavailable: {}", failing.join(", ")),
        );
        let mut body = serde_json::to_value(error.body()).unwrap_or_default();
        body["checks"] = json!(checks);
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, crate::problem::PROBLEM_JSON)],
            body.to_string(),
        )
            .into_response()
    }
}

/// The Prometheus text, with `taskmesh_dependency_up{service, dependency}` set from the
/// readiness checks run for this scrape (1 ready, 0 not).
async fn metrics(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    for (dependency, outcome) in readiness.report().await {
        metrics::gauge!("taskmesh_dependency_up", "service" => readiness.service, "dependency" => dependency)
            .set(if outcome.is_ok() { 1.0 } else { 0.0 });
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}
