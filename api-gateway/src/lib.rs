//! api-gateway: the one public entry point. Routes `/api/v1/...` to the services, verifies
//! access tokens against user-svc's JWK set and passes the verified identity on.
//!
//! # Layout
//! - [`routes`]: the routing table.
//! - [`proxy`]: the reverse proxy.
//! - [`admission`]: whether a request may go on (token, session, rate limit).
//! - [`auth`]: access-token verification with cached, refreshable public keys.
//! - [`tokens`]: personal access tokens (`tmk_…`): whom one stands for, asked of user-svc;
//!   [`scopes`]: the scope each route needs from one.
//! - [`client`]: the client's address behind trusted proxies.
//! - [`ratelimit`]: per-user and per-IP limits in Redis, reserved in batches.
//! - [`sessions`]: whether a session is live: known for a moment, ends followed, and user-svc's
//!   answer while Redis cannot be asked.
//! - [`docs`]: the merged OpenAPI document and Swagger UI.
//! - [`dashboard`]: the web dashboard at `/`, embedded.
//! - [`idempotency`]: `Idempotency-Key` on POST.
//! - [`overview`]: `GET /api/v1/me/overview`, one call across services.
//! - [`mcp`]: the MCP server at `/mcp` for AI agents, on the API above.
//! - [`people`]: `GET /api/v1/users/search`, the person picker's search across services.
//! - [`stream`]: the live event stream (`/api/v1/events/...`), fed from the bus.

pub mod admission;
pub mod auth;
pub mod client;
pub mod dashboard;
pub mod docs;
pub mod idempotency;
pub mod mcp;
pub mod overview;
pub mod people;
pub mod proxy;
pub mod ratelimit;
pub mod routes;
pub mod scopes;
pub mod sessions;
pub mod stream;
pub mod tokens;
pub mod upstream;

use std::sync::Arc;

use axum::{routing::any, Router};
use shared::{health::Readiness, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "api-gateway";

/// Events the stream feed appends to the log at once.
const FEED_BATCH: usize = 200;
/// How long the feed lets a batch gather after its first event: each batch costs a question to
/// task-svc and a round trip to Redis, so under a job engine's load a few milliseconds turn
/// batches of about ten events into batches of a hundred or more (docs/benchmarks.md).
const FEED_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

#[derive(Clone)]
pub struct AppState {
    pub http: reqwest::Client,
    pub redis: redis::aio::ConnectionManager,
    pub verifier: Arc<auth::Verifier>,
    /// Signs the assertion each request to a service carries (decision 28).
    pub trust: Arc<shared::internal::Trust>,
    pub config: Arc<Config>,
    /// This gateway's open event streams.
    pub hub: Arc<stream::hub::Hub>,
    /// user-svc's recent answers on sessions, while Redis cannot be asked.
    pub sessions: Arc<sessions::Fallback>,
    /// Sessions known live for a moment, or ended.
    pub known: Arc<sessions::known::Known>,
    /// user-svc's recent answers on personal access tokens.
    pub tokens: Arc<tokens::Tokens>,
    /// Requests reserved in Redis and not admitted yet.
    pub leases: Arc<ratelimit::lease::Leases>,
    /// Tags the identity a stream ticket stands for, so Redis cannot vouch for one by itself.
    pub tickets: Arc<shared::signing::MacKey>,
    /// Derives the keys that seal the answers the idempotency cache keeps.
    pub answers: Arc<shared::signing::MacKey>,
}

impl AppState {
    /// user-svc, for the gateway's own questions (sessions, tokens).
    pub fn user_svc(&self) -> shared::calls::Service<'_> {
        shared::calls::Service {
            http: &self.http,
            trust: &self.trust,
            name: "user-svc",
            base: &self.config.user.url,
        }
    }

    /// Base URL of a service.
    pub fn upstream(&self, service: &str) -> &str {
        let config = &self.config;
        match service {
            "user-svc" => &config.user.url,
            "task-svc" => &config.task.url,
            "notify-svc" => &config.notify.url,
            "media-svc" => &config.media.url,
            other => unreachable!("no upstream named {other}"),
        }
    }
}

/// Runs the gateway on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let trust = shared::internal::Trust::from_config(SERVICE, &config.internal)?;
    let tickets = Arc::new(stream::ticket::key(&config.internal)?);
    let answers = shared::internal::purpose_key(&config.internal, "taskmesh idempotency answers");
    let answers = Arc::new(answers?);
    let redis = shared::cache::connect(&config.redis, &shutdown).await?;
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()?;
    let verifier = auth::Verifier::new(
        &config.user.url,
        &config.auth.issuer,
        &config.auth.audience,
        std::time::Duration::from_secs(config.rate_limit.jwks_cache_secs),
        http.clone(),
    );
    let verifier = Arc::new(verifier);
    tokio::spawn({
        let verifier = verifier.clone();
        let shutdown = shutdown.clone();
        async move { verifier.prefetch(shutdown).await }
    });
    let live_for = std::time::Duration::from_millis(config.auth.live_session_cache_ms);
    let known = Arc::new(sessions::known::Known::new(live_for));
    tokio::spawn(sessions::revocations::follow(
        config.redis.clone(),
        known.clone(),
        shutdown.clone(),
    ));
    let state_config = config.clone();
    let trust = Arc::new(trust);
    let hub = Arc::new(stream::hub::Hub::new(shutdown.clone()));
    let tail = shared::cache::connect(&config.redis, &shutdown).await?;
    tokio::spawn(hub.clone().run(tail, config.redis.key_prefix.clone()));
    let broker = shared::broker::Broker::new(&config.amqp, SERVICE);
    let feed = shared::consumer::Consumer::new(
        broker.clone(),
        shared::topology::gateway_stream_queue(&broker, &config.consumer),
        stream::feed::Feed {
            http: http.clone(),
            trust: trust.clone(),
            task_url: config.task.url.clone(),
            redis: redis.clone(),
            prefix: config.redis.key_prefix.clone(),
            retention_secs: config.stream.retention_secs,
        },
    );
    let feeding = tokio::spawn(
        feed.with_linger(FEED_LINGER)
            .run_batched(FEED_BATCH, shutdown.clone()),
    );
    let state = AppState {
        http,
        redis: redis.clone(),
        verifier,
        trust,
        config: Arc::new(config),
        hub,
        sessions: Arc::default(),
        known,
        tokens: Arc::default(),
        leases: Arc::default(),
        tickets,
        answers,
    };
    let keys = state.verifier.clone();
    let readiness = Readiness::new(SERVICE)
        .redis(redis)
        .check("user-svc keys", move || {
            let keys = keys.clone();
            async move {
                if keys.has_keys().await {
                    Ok(())
                } else {
                    Err("the JWK set has not been fetched from user-svc yet")
                }
            }
        });
    let api = Router::new()
        .route(
            "/api/v1/me/overview",
            axum::routing::get(overview::overview),
        )
        .route("/api/v1/users/search", axum::routing::get(people::search))
        .merge(stream::router())
        .route("/api/v1/{*rest}", any(proxy::proxy))
        .merge(docs::router())
        .with_state(state.clone());
    // The MCP tools call the API above, in-process.
    let app = api
        .clone()
        .merge(mcp::router(state, api))
        .merge(docs::swagger_ui())
        .merge(dashboard::router());
    let cors = cors_layer(&state_config)?;
    let app = shared::startup::finish_router(app, readiness).layer(cors);
    shared::http::serve(listener, app, shutdown).await?;
    let _ = feeding.await;
    broker.close().await;
    Ok(())
}

/// CORS for the configured origins only; without any, browsers get no cross-origin access.
fn cors_layer(config: &Config) -> anyhow::Result<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins = config
        .cors
        .allowed_origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o)
                .map_err(|_| anyhow::anyhow!("cors.allowed_origins: bad origin {o:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let name = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            name("idempotency-key"),
            name("traceparent"),
            name("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            name("ratelimit"),
            name("ratelimit-policy"),
            name("x-request-id"),
            name("idempotent-replayed"),
        ])
        .max_age(std::time::Duration::from_secs(600)))
}
