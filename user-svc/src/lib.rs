//! user-svc: identity. Owns the `taskmesh_users` database: accounts, password hashes and the
//! keys that sign access tokens. Publishes `user.*` events through its outbox.
//!
//! # Layout
//! - [`auth`]: register and login (argon2id hashes, EdDSA access tokens).
//! - [`users`]: the user resource (`/api/v1/users/me`).
//! - [`keys`]: signing keys and the JWK set at `/.well-known/jwks.json`.

pub mod auth;
pub mod keys;
pub mod users;

use std::sync::Arc;

use axum::{extract::State, routing::get, Json, Router};
use shared::{startup::Platform, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "user-svc";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/users");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub keys: Arc<keys::Keys>,
}

/// Runs user-svc on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let platform = Platform::start(
        &config,
        SERVICE,
        &config.user.database,
        &MIGRATIONS,
        &shutdown,
    )
    .await?;
    let keys = Arc::new(keys::Keys::load_or_create(&platform.pool).await?);
    let state = AppState {
        pool: platform.pool.clone(),
        config: Arc::new(config),
        keys,
    };
    let app = Router::new()
        .merge(auth::router())
        .merge(users::router())
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state);
    let readiness = platform.readiness();
    platform.serve(listener, app, readiness, shutdown).await
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.jwks.clone())
}
