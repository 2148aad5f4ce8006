//! Pausing and resuming a pool. The paused set lives in `pool_pauses`; every replica mirrors
//! it into Redis ([`shared::cache::paused_pools_key`]) on each change and every few seconds
//! ([`crate::background::pool_mirror`]), where workers read it.

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use shared::identity::Identity;
use sqlx::PgPool;

use crate::{
    domain::pool::{checked, Minute, PoolPause, PoolStats, PoolWindow},
    error::TaskError,
    store, AppState,
};

/// Pauses or resumes `pool` for an admin, then mirrors the paused set to Redis.
pub async fn set(
    state: &AppState,
    identity: &Identity,
    pool: String,
    pause: bool,
) -> Result<PoolPause, TaskError> {
    checked(&pool)?;
    let paused_at: Option<DateTime<Utc>> = match pause {
        true => Some(store::pools::pause(&state.pool, &pool, identity.user_id).await?),
        false => {
            store::pools::resume(&state.pool, &pool).await?;
            None
        }
    };
    tracing::info!(%pool, admin = %identity.user_id, paused = pause, "pool pause changed");
    let mirrored = mirror(&state.pool, &state.cache.redis, &state.cache.prefix).await;
    if let Err(err) = &mirrored {
        tracing::warn!(error = %err, "cannot mirror the paused pools to Redis");
    }
    mirrored?;
    Ok(PoolPause {
        pool,
        paused: pause,
        paused_at,
    })
}

/// Writes the paused set to Redis; 503 naming Redis if it cannot (the change is kept and the
/// next mirror round writes it).
pub async fn mirror(
    pool: &PgPool,
    redis: &ConnectionManager,
    prefix: &str,
) -> Result<(), TaskError> {
    let names = store::pools::paused(pool).await?;
    crate::infra::pauses::write(redis, prefix, &names)
        .await
        .map_err(|err| {
            tracing::debug!(error = %err, "cannot write the paused pools to Redis");
            TaskError::Unavailable("redis")
        })
}

/// Every pool that has jobs, with its depth by state.
pub async fn stats(state: &AppState) -> Result<Vec<PoolStats>, TaskError> {
    Ok(store::pools::stats(&state.pool).await?)
}

/// Runs ended per minute over the last `minutes` (1 to 1440, default 60).
pub async fn activity(state: &AppState, minutes: Option<u32>) -> Result<Vec<Minute>, TaskError> {
    let minutes = minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(TaskError::malformed(
            "invalid_query",
            "minutes is 1 to 1440",
        ));
    }
    Ok(store::runs::activity(&state.pool, minutes as i32).await?)
}

/// Each pool's runs over the last hour and the last day.
pub async fn throughput(state: &AppState) -> Result<Vec<PoolWindow>, TaskError> {
    Ok(store::runs::throughput(&state.pool).await?)
}
