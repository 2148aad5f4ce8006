//! user-svc: identity. Owns the `taskmesh_users` database: accounts, password hashes, sessions,
//! refresh tokens and the keys that sign access tokens. Publishes `user.*` events through its
//! outbox and mirrors live sessions in Redis for the gateway.
//!
//! # Layout
//! - [`auth`]: register, login, refresh, logout, logout everywhere.
//! - [`users`]: the user resource (`/api/v1/users/me`, admin routes).
//! - [`sessions`]: sessions, refresh-token rotation and reuse detection, the Redis mirror, and
//!   ending sessions (logout, a password change, deactivation).
//! - [`domain`]: the rules of an account's fields (email, display name).
//! - [`live`]: which sessions are live, for the gateway while Redis cannot be asked.
//! - [`tokens`]: access tokens (EdDSA JWT).
//! - [`password`]: password policy and argon2id hashing.
//! - [`throttle`]: login attempt limits per account and per IP.
//! - [`keys`]: signing keys and the JWK set at `/.well-known/jwks.json`.
//! - [`admin`]: key rotation and retirement.

pub mod admin;
pub mod auth;
pub mod domain;
pub mod keys;
pub mod live;
pub mod password;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use axum::{extract::State, routing::get, Json, Router};
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
    pub keys: Arc<RwLock<keys::Keys>>,
}

/// This service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all,
        users::me, users::update_me, users::change_password, users::list, users::read,
        users::admin_update, users::delete, admin::list, admin::rotate, admin::retire
    ),
    tags(
        (name = "auth", description = "Accounts, login and sessions"),
        (name = "users", description = "The caller's profile"),
        (name = "admin", description = "User administration and signing keys (admin role)")
    )
)]
pub struct ApiDoc;

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
    let keys = keys::Keys::load_or_create(&platform.pool).await?;
    if let Some(email) = &config.auth.bootstrap_admin_email {
        bootstrap_admin(&platform.pool, email).await?;
    }
    let state = AppState {
        pool: platform.pool.clone(),
        redis: redis.clone(),
        config: Arc::new(config),
        keys: Arc::new(RwLock::new(keys)),
    };
    // Other replicas rotate and retire keys too: pick their changes up.
    platform.spawn(reload_keys_periodically(state.clone(), shutdown.clone()));
    let app = Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(admin::router())
        .merge(live::router())
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
        .merge(shared::health::openapi_router(
            <ApiDoc as utoipa::OpenApi>::openapi(),
        ));
    let readiness = platform.readiness().redis(redis);
    platform.serve(listener, app, readiness, shutdown).await
}

/// Makes the configured account admin if it exists (it becomes admin on registration otherwise),
/// announcing the change like any other role change.
async fn bootstrap_admin(pool: &PgPool, email: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let promoted: Option<(uuid::Uuid, String, bool)> = sqlx::query_as(
        "UPDATE users SET role = 'admin', updated_at = now()
          WHERE lower(email) = lower($1) AND role <> 'admin'
          RETURNING id, display_name, active",
    )
    .bind(email)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((user_id, display_name, active)) = promoted {
        let event = shared::events::UserUpdated {
            user_id,
            display_name,
            role: "admin".into(),
            active,
            changed: vec!["role".into()],
        };
        shared::outbox::enqueue(&mut tx, shared::events::CloudEvent::new(SERVICE, event)).await?;
        tracing::info!(%user_id, "bootstrap admin promoted");
    }
    tx.commit().await?;
    Ok(())
}

async fn reload_keys_periodically(state: AppState, shutdown: CancellationToken) {
    let period = std::time::Duration::from_secs(30);
    shared::background::every_after(period, &shutdown, || async {
        match keys::Keys::load(&state.pool).await {
            Ok(fresh) => *state.keys.write().await = fresh,
            Err(err) => tracing::warn!(error = format!("{err:#}"), "cannot reload signing keys"),
        }
    })
    .await
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.read().await.jwks.clone())
}
