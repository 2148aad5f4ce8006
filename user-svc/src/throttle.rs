//! Brute-force protection for login, counted in one atomic Redis script before the password is
//! checked:
//!
//! - per account *and source* (the client's IPv4 address, or its IPv6 /64): the first
//!   `auth.max_failed_logins_per_source` attempts are answered at once; after that the pair waits
//!   1 s, then 2 s, 4 s … (at most `auth.lockout_window_secs`) between attempts, each early one
//!   refused with 429 and `Retry-After` (and not counted, so hammering does not lengthen it).
//!   An attacker elsewhere therefore never locks the owner out: the owner's own source has its
//!   own count.
//! - per source across accounts: `auth.max_failed_logins_per_ip` attempts per window (password
//!   spraying).
//!
//! A successful login clears its pair. Without Redis, login fails closed (503).

use redis::Script;
use shared::ApiError;

use crate::AppState;

/// KEYS: the pair's count, the pair's lock, the source's count. ARGV: the window (s), the
/// attempts per pair before delays, the attempts per source. Returns {0, 0} to go on, or
/// {1, ms} while the pair waits, {2, ms} when the source is over its limit.
const COUNT: &str = r"
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return {1, wait} end
local window = tonumber(ARGV[1])
local source = redis.call('INCR', KEYS[3])
if source == 1 then redis.call('EXPIRE', KEYS[3], window) end
if source > tonumber(ARGV[3]) then return {2, redis.call('PTTL', KEYS[3])} end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], window) end
local free = tonumber(ARGV[2])
if n >= free then
  local delay = math.min(window * 1000, 1000 * 2 ^ math.min(n - free, 30))
  redis.call('SET', KEYS[2], '1', 'PX', delay)
  redis.call('EXPIRE', KEYS[1], window)
end
return {0, 0}
";

fn keys(state: &AppState, email: &str, ip: &str) -> [String; 3] {
    let prefix = &state.config.redis.key_prefix;
    let account = email.trim().to_lowercase();
    let source = shared::identity::source_of(ip);
    [
        format!("{prefix}login:pair:{account}:{source}"),
        format!("{prefix}login:wait:{account}:{source}"),
        format!("{prefix}login:source:{source}"),
    ]
}

/// Counts this attempt; refuses it with 429 while its pair waits or its source is over its limit.
pub async fn admit(state: &AppState, email: &str, ip: &str) -> Result<(), ApiError> {
    let auth = &state.config.auth;
    let [pair, wait, source] = keys(state, email, ip);
    let mut conn = state.redis.clone();
    let (outcome, ms): (i64, i64) = Script::new(COUNT)
        .key(&pair)
        .key(&wait)
        .key(&source)
        .arg(auth.lockout_window_secs)
        .arg(auth.max_failed_logins_per_source.max(1))
        .arg(auth.max_failed_logins_per_ip)
        .invoke_async(&mut conn)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "login throttle unavailable; refusing logins");
            ApiError::unavailable("redis")
        })?;
    if outcome == 0 {
        return Ok(());
    }
    let seconds = ((ms.max(0) as u64).div_ceil(1000)).max(1);
    Err(ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too_many_login_attempts",
        "too many login attempts from here; try again later",
    )
    .with_retry_after(seconds))
}

/// After a successful login: the pair starts again, and this attempt no longer counts against
/// the source.
pub async fn succeeded(state: &AppState, email: &str, ip: &str) {
    let [pair, wait, source] = keys(state, email, ip);
    let mut conn = state.redis.clone();
    let result: redis::RedisResult<()> = redis::pipe()
        .del(&[&pair, &wait])
        .ignore()
        .decr(&source, 1)
        .ignore()
        .query_async(&mut conn)
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "cannot reset the login counter");
    }
}
