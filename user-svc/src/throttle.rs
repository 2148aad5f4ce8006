//! Brute-force protection for login: attempts are counted per account and per client IP in one
//! atomic Redis script, inside a window. Past the limit the answer is 429 with `Retry-After`.
//! A successful login clears the account's counter. Without Redis, login fails closed (503).

use redis::Script;
use shared::ApiError;

use crate::AppState;

/// Counts one attempt on both keys; returns each key's count and seconds left in its window.
const COUNT: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  out[2 * i - 1] = n
  out[2 * i] = redis.call('TTL', key)
end
return out
";

fn keys(state: &AppState, email: &str, ip: &str) -> [String; 2] {
    let prefix = &state.config.redis.key_prefix;
    [
        format!("{prefix}login:account:{}", email.trim().to_lowercase()),
        format!("{prefix}login:ip:{ip}"),
    ]
}

/// Counts this attempt; refuses it with 429 when either limit is already used up.
pub async fn admit(state: &AppState, email: &str, ip: &str) -> Result<(), ApiError> {
    let auth = &state.config.auth;
    let [account, address] = keys(state, email, ip);
    let mut conn = state.redis.clone();
    let counts: Vec<i64> = Script::new(COUNT)
        .key(&account)
        .key(&address)
        .arg(auth.lockout_window_secs)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "login throttle unavailable; refusing logins");
            ApiError::unavailable("redis")
        })?;
    let over = |count: i64, max: u32| count > i64::from(max);
    let retry_after = if over(counts[0], auth.max_failed_logins_per_account) {
        Some(counts[1])
    } else if over(counts[2], auth.max_failed_logins_per_ip) {
        Some(counts[3])
    } else {
        None
    };
    match retry_after {
        None => Ok(()),
        Some(seconds) => Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_login_attempts",
            "too many login attempts; try again later",
        )
        .with_retry_after(seconds.max(1) as u64)),
    }
}

/// After a successful login: the account's counter starts again, and this attempt no longer
/// counts against the address.
pub async fn succeeded(state: &AppState, email: &str, ip: &str) {
    let [account, address] = keys(state, email, ip);
    let mut conn = state.redis.clone();
    let result: redis::RedisResult<()> = redis::pipe()
        .del(&account)
        .ignore()
        .decr(&address, 1)
        .ignore()
        .query_async(&mut conn)
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "cannot reset the login counter");
    }
}
