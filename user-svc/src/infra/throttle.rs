//! Brute-force protection for login, counted in one atomic Redis script before the password is
//! checked:
//!
//! - per account *and source* (the client's IPv4 address, or its IPv6 /64): the first
//!   `auth.max_failed_logins_per_source` attempts are answered at once; after that the pair waits
//!   1 s, then 2 s, 4 s … (at most `auth.lockout_window_secs`) between attempts, each early one
//!   refused with 429 and `Retry-After` (and not counted, so hammering does not lengthen it).
//!   An attacker elsewhere therefore never slows the owner down: the owner's source has its
//!   own count.
//! - per source across accounts: `auth.max_failed_logins_per_ip` attempts per window (password
//!   spraying).
//! - per account from *unknown* sources: `auth.max_failed_logins_per_account` attempts per window
//!   across every source the account has not signed in from in the last 30 days (an attacker
//!   with many addresses). Sources the owner signed in from are never held by it.
//!
//! A successful login clears its pair and makes its source known. Without Redis, login fails
//! closed (503).

use std::sync::LazyLock;

use crate::{error::UserError, AppState};
use redis::Script;

/// How long a source an account signed in from stays known.
const KNOWN_SECS: u64 = 30 * 86_400;

/// KEYS: the pair's count, the pair's wait, the source's count, the account's count from unknown
/// sources, the pair's "known" mark. ARGV: the window (s), attempts per pair before waits,
/// attempts per source, attempts per account from unknown sources. Returns {0, 0} to go on, or
/// {1, ms} while the pair waits, {2, ms} / {3, ms} while the source / the account is over.
const COUNT: &str = r"
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return {1, wait} end
local window = tonumber(ARGV[1])
local source = redis.call('INCR', KEYS[3])
if source == 1 then redis.call('EXPIRE', KEYS[3], window) end
if source > tonumber(ARGV[3]) then return {2, redis.call('PTTL', KEYS[3])} end
if redis.call('EXISTS', KEYS[5]) == 0 then
  local account = redis.call('INCR', KEYS[4])
  if account == 1 then redis.call('EXPIRE', KEYS[4], window) end
  if account > tonumber(ARGV[4]) then return {3, redis.call('PTTL', KEYS[4])} end
end
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

/// [`COUNT`], its digest computed once.
static COUNTING: LazyLock<Script> = LazyLock::new(|| Script::new(COUNT));

/// KEYS as for [`COUNT`]. ARGV: how long the source stays known (s).
const SUCCEEDED: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('DECR', KEYS[3]) end
redis.call('SET', KEYS[5], '1', 'EX', ARGV[1])
return 0
";

/// [`SUCCEEDED`], its digest computed once.
static RESETTING: LazyLock<Script> = LazyLock::new(|| Script::new(SUCCEEDED));

fn keys(state: &AppState, email: &str, ip: &str) -> [String; 5] {
    let prefix = &state.config.redis.key_prefix;
    let account = email.trim().to_lowercase();
    let source = shared::identity::source_of(ip);
    [
        format!("{prefix}login:pair:{account}:{source}"),
        format!("{prefix}login:wait:{account}:{source}"),
        format!("{prefix}login:source:{source}"),
        format!("{prefix}login:account:{account}"),
        format!("{prefix}login:known:{account}:{source}"),
    ]
}

fn unavailable(err: redis::RedisError) -> UserError {
    tracing::warn!(error = %err, "login throttle unavailable; refusing logins");
    UserError::Unavailable("redis")
}

/// Counts this attempt; refuses it with 429 while its pair waits, or its source or (from an
/// unknown source) its account is over its limit.
pub async fn admit(state: &AppState, email: &str, ip: &str) -> Result<(), UserError> {
    let auth = &state.config.auth;
    let mut invocation = COUNTING.prepare_invoke();
    for key in keys(state, email, ip) {
        invocation.key(key);
    }
    let (outcome, ms): (i64, i64) = invocation
        .arg(auth.lockout_window_secs)
        .arg(auth.max_failed_logins_per_source.max(1))
        .arg(auth.max_failed_logins_per_ip)
        .arg(auth.max_failed_logins_per_account)
        .invoke_async(&mut state.redis.clone())
        .await
        .map_err(unavailable)?;
    if outcome == 0 {
        return Ok(());
    }
    let retry_after = ((ms.max(0) as u64).div_ceil(1000)).max(1);
    Err(UserError::Throttled { retry_after })
}

/// After a successful login: the pair starts again, this attempt no longer counts against the
/// source, and the source is known to the account for 30 days.
pub async fn succeeded(state: &AppState, email: &str, ip: &str) {
    let mut invocation = RESETTING.prepare_invoke();
    for key in keys(state, email, ip) {
        invocation.key(key);
    }
    let result: redis::RedisResult<i64> = invocation
        .arg(KNOWN_SECS)
        .invoke_async(&mut state.redis.clone())
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "cannot reset the login counter");
    }
}
