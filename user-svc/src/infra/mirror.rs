//! The Redis mirror of live sessions ([`shared::sessions`]), which the gateway checks with every
//! request: deleting a session's mirror ends its access tokens at once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{error::UserError, AppState};

/// Writes the mirror of a live session. Without it the gateway refuses the session's tokens, so
/// a failure here fails the request (503).
pub async fn put(
    state: &AppState,
    session_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), UserError> {
    let ttl = (expires_at - Utc::now()).num_seconds().max(1) as u64;
    shared::sessions::put(
        &state.redis,
        &state.config.redis.key_prefix,
        session_id,
        user_id,
        ttl,
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "cannot record the session in Redis");
        UserError::Unavailable("redis")
    })
}

/// Deletes the mirror of ended sessions, so their access tokens stop working now.
pub async fn remove(state: &AppState, session_ids: &[Uuid]) -> Result<(), UserError> {
    shared::sessions::remove(&state.redis, &state.config.redis.key_prefix, session_ids)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot remove ended sessions from Redis");
            UserError::Unavailable("redis")
        })
}
