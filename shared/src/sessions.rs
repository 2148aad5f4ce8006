//! The session mirror in Redis: user-svc writes `<prefix>session:<sid>` for every live session
//! and deletes it when the session ends; the gateway refuses an access token whose session key is
//! gone, so logout and deactivation take effect at once rather than at the token's expiry.
//! PostgreSQL (user-svc) stays the source of truth; a refresh writes the key again. Each end is
//! also published on [`ended_channel`] (the ids, comma-separated) right after the delete, so
//! gateways that trust a live answer for a moment hear of it at once.

use redis::aio::ConnectionManager;
use uuid::Uuid;

pub fn key(prefix: &str, session_id: Uuid) -> String {
    format!("{prefix}session:{session_id}")
}

/// Marks a session live for `ttl_secs`.
pub async fn put(
    redis: &ConnectionManager,
    prefix: &str,
    session_id: Uuid,
    user_id: Uuid,
    ttl_secs: u64,
) -> redis::RedisResult<()> {
    let mut conn = redis.clone();
    redis::cmd("SET")
        .arg(key(prefix, session_id))
        .arg(user_id.to_string())
        .arg("EX")
        .arg(ttl_secs.max(1))
        .query_async(&mut conn)
        .await
}

/// The pub/sub channel on which [`remove`] publishes the sessions it ended.
pub fn ended_channel(prefix: &str) -> String {
    format!("{prefix}sessions:ended")
}

/// The sessions named in a message on [`ended_channel`]; `None` if it cannot be read.
pub fn parse_ended(payload: &str) -> Option<Vec<Uuid>> {
    payload.split(',').map(|id| id.parse().ok()).collect()
}

/// Ends sessions now: deletes their keys, then publishes their ids. A failed publication is
/// logged and not an error: the keys are gone, and a gateway trusts a live answer only for
/// `auth.live_session_cache_ms` after it asked. (Not one transaction: a Redis user without the
/// right to publish on the channel would then lose the delete too.)
pub async fn remove(
    redis: &ConnectionManager,
    prefix: &str,
    session_ids: &[Uuid],
) -> redis::RedisResult<()> {
    if session_ids.is_empty() {
        return Ok(());
    }
    let mut conn = redis.clone();
    let keys: Vec<String> = session_ids.iter().map(|s| key(prefix, *s)).collect();
    redis::cmd("DEL")
        .arg(keys)
        .query_async::<()>(&mut conn)
        .await?;
    let ids: Vec<String> = session_ids.iter().map(Uuid::to_string).collect();
    let published = redis::cmd("PUBLISH")
        .arg(ended_channel(prefix))
        .arg(ids.join(","))
        .query_async::<i64>(&mut conn)
        .await;
    if let Err(err) = published {
        tracing::warn!(error = %err, "ended sessions not published; gateways refuse them within a second");
    }
    Ok(())
}

/// Whether a session is live.
pub async fn is_live(
    redis: &ConnectionManager,
    prefix: &str,
    session_id: Uuid,
) -> redis::RedisResult<bool> {
    let mut conn = redis.clone();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(key(prefix, session_id))
        .query_async(&mut conn)
        .await?;
    Ok(exists == 1)
}

/// user-svc's route that names the live ones among some sessions, from PostgreSQL, for the
/// gateway while Redis cannot be asked.
pub const LIVE_PATH: &str = "/internal/v1/sessions/live";

/// Most sessions one [`LiveQuery`] may name.
pub const MAX_LIVE_QUERY: usize = 100;

/// The question to [`LIVE_PATH`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    pub session_ids: Vec<Uuid>,
}

/// The answer: the named sessions that are live (not ended, not expired, their user active).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Live {
    pub live: Vec<Uuid>,
}
