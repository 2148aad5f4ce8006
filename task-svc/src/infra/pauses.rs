//! The paused pools' mirror in Redis, where workers read it.

use redis::aio::ConnectionManager;

/// Writes the names of the paused pools under [`shared::cache::paused_pools_key`].
pub async fn write(
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
