//! Rate limits in Redis: a fixed window per route class and subject (user or IP), counted by one
//! atomic script and shared by every gateway replica. A gateway reserves requests in batches
//! ([`lease`]): one at a time while a client is slow, up to a twentieth of the limit (at most
//! 1,000) while it is fast, so a busy client costs Redis a round trip per batch, not per request.
//! Redis grants only what is left under the limit and a gateway admits only what it was granted,
//! so the limit is never exceeded; a client that switches between replicas can be refused early
//! by what each left unused of its grants.
//!
//! Every limited response carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-
//! ratelimit-headers); a refused one is 429 with `Retry-After`. When Redis is down the gateway
//! serves without limits (logged, counted in `taskmesh_ratelimit_unavailable_total`); logins
//! still fail closed because user-svc's own attempt limits need Redis.

pub mod lease;
pub mod policy;

pub use policy::{Decision, Policy};

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::{aio::ConnectionManager, Script};

/// Reserves up to `ARGV[2]` requests (0: none) in the window counted by `KEYS[1]` (`ARGV[1]`
/// seconds long) under the limit `ARGV[3]`: adds only what is left under the limit, so the count
/// never passes it. With `KEYS[2]`, first checks that that session key exists, in the same
/// round trip. Returns the count after it, what was granted, and the milliseconds until the
/// window resets; `{-1, 0, 0}` means the session has ended.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0, 0} end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[2]), math.max(0, tonumber(ARGV[3]) - current))
local n = redis.call('INCRBY', KEYS[1], grant)
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1]) * 1000
end
return {n, grant, ttl}
",
    )
});

/// What Redis said to a reservation.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// What was granted (its `resets_at` never later than the window's end in Redis: counted
    /// from before the question was sent).
    Reserved(lease::Grant),
    /// The request's session is not live.
    SessionEnded,
    /// Redis could not be asked: serve without the checks (logged and counted).
    Unavailable,
}

/// Reserves up to `want` requests (0: none) in the window of `key` under `policy`; with
/// `session`, first checks that the session key exists, in the same round trip.
pub async fn reserve(
    redis: &ConnectionManager,
    key: &str,
    policy: Policy,
    want: u64,
    session: Option<&str>,
) -> Outcome {
    let mut conn = redis.clone();
    let asked = Instant::now();
    let mut invocation = RESERVE.key(key);
    if let Some(session_key) = session {
        invocation.key(session_key);
    }
    let result: redis::RedisResult<(i64, i64, i64)> = invocation
        .arg(policy.window_secs)
        .arg(want)
        .arg(policy.limit)
        .invoke_async(&mut conn)
        .await;
    match result {
        Ok((-1, _, _)) => Outcome::SessionEnded,
        Ok((count, granted, ttl_ms)) => Outcome::Reserved(lease::Grant {
            granted: granted.max(0) as u64,
            count: count.max(0) as u64,
            resets_at: asked + Duration::from_millis(ttl_ms.max(1) as u64),
        }),
        Err(err) => {
            tracing::warn!(error = %err, "Redis unavailable; serving without session check and rate limit");
            metrics::counter!("taskmesh_ratelimit_unavailable_total").increment(1);
            if session.is_some() {
                metrics::counter!("taskmesh_session_check_unavailable_total").increment(1);
            }
            Outcome::Unavailable
        }
    }
}
