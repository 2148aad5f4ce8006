//! Pausing a pool: `POST /api/v1/admin/pools/{pool}/pause` and `/resume` (admins). A paused
//! pool's workers stop taking its jobs within a second and finish the ones they are running;
//! its jobs are still dispatched and wait in its queue, and run once it is resumed. The paused
//! set lives in `pool_pauses`; every replica mirrors it into Redis
//! ([`shared::cache::paused_pools_key`]) on each change and every few seconds, where workers
//! read it.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    routing::post,
    Json, Router,
};
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// How often each replica writes the paused set to Redis even without a change (a Redis that
/// restarted empty learns it again).
const MIRROR_EVERY: Duration = Duration::from_secs(5);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/pools/{pool}/pause", post(pause))
        .route("/api/v1/admin/pools/{pool}/resume", post(resume))
}

/// A pool's pause state.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolPause {
    pub pool: String,
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
}

fn checked(pool: &str) -> Result<(), ApiError> {
    if shared::topology::valid_pool(pool) {
        Ok(())
    } else {
        Err(ApiError::not_found("pool"))
    }
}

#[utoipa::path(post, path = "/api/v1/admin/pools/{pool}/pause", tag = "jobs", security(("bearer" = [])),
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Paused (or already paused): workers stop taking its jobs within a second; running ones finish", body = PoolPause),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "Not a pool name", body = ProblemBody)))]
pub async fn pause(
    State(state): State<AppState>,
    identity: Identity,
    Path(pool): Path<String>,
) -> Result<Json<PoolPause>, ApiError> {
    set(&state, &identity, pool, true).await
}

#[utoipa::path(post, path = "/api/v1/admin/pools/{pool}/resume", tag = "jobs", security(("bearer" = [])),
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Resumed (or was not paused): workers take its jobs again within a second", body = PoolPause),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "Not a pool name", body = ProblemBody)))]
pub async fn resume(
    State(state): State<AppState>,
    identity: Identity,
    Path(pool): Path<String>,
) -> Result<Json<PoolPause>, ApiError> {
    set(&state, &identity, pool, false).await
}

/// Pauses or resumes `pool`, then mirrors the paused set to Redis.
async fn set(
    state: &AppState,
    identity: &Identity,
    pool: String,
    pause: bool,
) -> Result<Json<PoolPause>, ApiError> {
    identity.require_admin()?;
    checked(&pool)?;
    let paused_at: Option<DateTime<Utc>> = match pause {
        true => Some(
            sqlx::query_scalar(
                "INSERT INTO pool_pauses (pool, paused_by) VALUES ($1, $2)
                 ON CONFLICT (pool) DO UPDATE SET pool = EXCLUDED.pool RETURNING paused_at",
            )
            .bind(&pool)
            .bind(identity.user_id)
            .fetch_one(&state.pool)
            .await?,
        ),
        false => {
            sqlx::query("DELETE FROM pool_pauses WHERE pool = $1")
                .bind(&pool)
                .execute(&state.pool)
                .await?;
            None
        }
    };
    tracing::info!(%pool, admin = %identity.user_id, paused = pause, "pool pause changed");
    mirror(&state.pool, &state.cache.redis, &state.cache.prefix).await?;
    Ok(Json(PoolPause {
        pool,
        paused: pause,
        paused_at,
    }))
}

/// The paused pools, by name.
pub async fn paused(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT pool FROM pool_pauses ORDER BY pool")
        .fetch_all(pool)
        .await
}

/// Writes the paused set to Redis; 503 naming Redis if it cannot (the change is kept and the
/// next mirror round writes it).
async fn mirror(pool: &PgPool, redis: &ConnectionManager, prefix: &str) -> Result<(), ApiError> {
    let names = paused(pool).await?;
    write(redis, prefix, &names).await.map_err(|err| {
        tracing::warn!(error = %err, "cannot mirror the paused pools to Redis");
        ApiError::unavailable("redis")
    })
}

async fn write(
    redis: &ConnectionManager,
    prefix: &str,
    names: &[String],
) -> redis::RedisResult<()> {
    let mut conn = redis.clone();
    let value = serde_json::to_string(names).expect("names serialise");
    redis::cmd("SET")
        .arg(shared::cache::paused_pools_key(prefix))
        .arg(value)
        .query_async::<()>(&mut conn)
        .await
}

/// Mirrors the paused set every [`MIRROR_EVERY`] until `shutdown`.
pub async fn mirror_periodically(
    pool: PgPool,
    redis: ConnectionManager,
    prefix: String,
    shutdown: CancellationToken,
) {
    loop {
        match paused(&pool).await {
            Ok(names) => {
                if let Err(err) = write(&redis, &prefix, &names).await {
                    tracing::debug!(error = %err, "cannot mirror the paused pools to Redis yet");
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot read the paused pools yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(MIRROR_EVERY) => {}
        }
    }
}
