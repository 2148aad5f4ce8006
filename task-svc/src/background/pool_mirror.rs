//! The paused pools mirrored into Redis every few seconds, even without a change (a Redis that
//! restarted empty learns them again).

use std::time::Duration;

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often each replica writes the paused set to Redis even without a change.
const MIRROR_EVERY: Duration = Duration::from_secs(5);

/// Mirrors the paused set every [`MIRROR_EVERY`] until `shutdown`.
pub async fn mirror_periodically(
    pool: PgPool,
    redis: ConnectionManager,
    prefix: String,
    shutdown: CancellationToken,
) {
    shared::background::every(MIRROR_EVERY, &shutdown, || async {
        if let Err(err) = crate::service::pools::mirror(&pool, &redis, &prefix).await {
            tracing::debug!(error = %err, "cannot mirror the paused pools yet");
        }
    })
    .await
}
