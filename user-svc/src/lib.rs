//! user-svc: identity. Owns the `taskmesh_users` database: accounts, password hashes, sessions,
//! refresh tokens and the keys that sign access tokens. Publishes `user.*` events through its
//! outbox and mirrors live sessions in Redis for the gateway.
//!
//! # Layout
//! Layered, dependencies one way: [`http`] calls [`service`], which uses [`domain`] (pure rules
//! and types), [`store`] (all SQL, returning `sqlx::Error`) and [`infra`] (Redis and
//! cryptography). [`error::UserError`] is the layers' one error, mapped once to problem+json.
//!
//! - Accounts (register, profile, password change, admins' changes and deletion):
//!   [`service::accounts`]; their fields' rules in [`domain::account`], the password policy in
//!   [`domain::password`], hashing in [`infra::hashing`].
//! - Signing in: login and refresh in [`service::auth`], throttled by [`infra::throttle`];
//!   refresh-token rotation and reuse detection decided in [`domain::session`].
//! - Sessions: opened, handed out and ended in [`service::sessions`], mirrored in Redis by
//!   [`infra::mirror`].
//! - Signing keys and access tokens: [`service::keys`], [`domain::keys`], [`infra::signing`].
//! - Personal access tokens (made, listed, revoked, verified for the gateway):
//!   [`service::tokens`], their rules in [`domain::tokens`].
//! - Routes: [`http::auth`], [`http::users`], [`http::keys`], [`http::tokens`], and for the
//!   gateway [`http::live`].

pub mod domain;
pub mod error;
pub mod http;
pub mod infra;
pub mod service;
pub mod store;

use std::sync::Arc;

use redis::aio::ConnectionManager;
use shared::{startup::Platform, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "user-svc";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/users");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub redis: ConnectionManager,
    pub config: Arc<Config>,
    pub keys: Arc<RwLock<infra::signing::Keys>>,
    /// Seals the signing keys' private halves kept in the database.
    pub at_rest: Arc<shared::seal::AtRest>,
}

/// Runs user-svc on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut platform = Platform::start(
        &config,
        SERVICE,
        &config.user.database,
        &MIGRATIONS,
        &shutdown,
    )
    .await?;
    let redis = shared::cache::connect(&config.redis, &shutdown).await?;
    let at_rest = shared::startup::at_rest(&config)?;
    shared::db::reseal_column(&platform.pool, &at_rest, "signing_keys", "private_pem").await?;
    let keys = service::keys::load_or_create(&platform.pool, &at_rest).await?;
    let state = AppState {
        pool: platform.pool.clone(),
        redis: redis.clone(),
        config: Arc::new(config),
        keys: Arc::new(RwLock::new(keys)),
        at_rest: Arc::new(at_rest),
    };
    if let Some(email) = &state.config.auth.bootstrap_admin_email {
        service::verification::bootstrap_admin(&state, email).await?;
    }
    // Other replicas rotate and retire keys too: pick their changes up.
    platform.spawn(reload_keys_periodically(state.clone(), shutdown.clone()));
    let (routes, api) = http::router();
    let app = routes
        .with_state(state)
        .merge(shared::health::openapi_router(api));
    let readiness = platform.readiness().redis(redis);
    platform.serve(listener, app, readiness, shutdown).await
}

async fn reload_keys_periodically(state: AppState, shutdown: CancellationToken) {
    let period = std::time::Duration::from_secs(30);
    shared::background::every_after(period, &shutdown, || async {
        if let Err(err) = service::keys::reload(&state).await {
            tracing::warn!(error = format!("{err:#}"), "cannot reload signing keys");
        }
    })
    .await
}
