//! Rate limits in Redis: a fixed window per route class and subject (user or IP), counted by one
//! atomic script and shared by every gateway replica. A gateway reserves requests in batches
//! ([`lease`]): one at a time while a client is slow, up to a twentieth of the limit (at most
//! 1,000) while it is fast, so a busy client costs Redis a round trip per batch, not per request.
//! A gateway never admits more than it reserved, so the limit is never exceeded; a client can be
//! refused before it reaches the limit by at most the unused part of each replica's last batch.
//!
//! Every limited response carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-
//! ratelimit-headers); a refused one is 429 with `Retry-After`. When Redis is down the gateway
//! serves without limits (logged, counted in `taskmesh_ratelimit_unavailable_total`); logins
//! still fail closed because user-svc's own attempt limits need Redis.

pub mod lease;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use redis::{aio::ConnectionManager, Script};

/// Reserves `ARGV[2]` requests (0: none) in the window counted by `KEYS[1]` (`ARGV[1]` seconds
/// long); with `KEYS[2]`, first checks that that session key exists, in the same round trip.
/// Returns the count after the reservation and the milliseconds until the window resets;
/// `{-1, 0}` means the session has ended.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0} end
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1]) * 1000
end
return {n, ttl}
",
    )
});

/// A route class's limit.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub name: &'static str,
    pub limit: u64,
    pub window_secs: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub policy: Policy,
    pub allowed: bool,
    pub remaining: u64,
    pub reset_secs: u64,
}

impl Decision {
    /// Writes the `RateLimit-Policy` and `RateLimit` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let p = self.policy;
        let policy = format!("\"{}\";q={};w={}", p.name, p.limit, p.window_secs);
        let state = format!("\"{}\";r={};t={}", p.name, self.remaining, self.reset_secs);
        if let Ok(v) = HeaderValue::from_str(&policy) {
            headers.insert("ratelimit-policy", v);
        }
        if let Ok(v) = HeaderValue::from_str(&state) {
            headers.insert("ratelimit", v);
        }
    }
}

/// What Redis said to a reservation.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// The window's count after it, and when the window resets (never later than it does in
    /// Redis: counted from before the question was sent).
    Reserved { count: u64, resets_at: Instant },
    /// The request's session is not live.
    SessionEnded,
    /// Redis could not be asked: serve without the checks (logged and counted).
    Unavailable,
}

/// Reserves `want` requests (0: none) in the window of `key` under `policy`; with `session`,
/// first checks that the session key exists, in the same round trip.
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
    let result: redis::RedisResult<(i64, i64)> = invocation
        .arg(policy.window_secs)
        .arg(want)
        .invoke_async(&mut conn)
        .await;
    match result {
        Ok((-1, _)) => Outcome::SessionEnded,
        Ok((count, ttl_ms)) => Outcome::Reserved {
            count: count.max(0) as u64,
            resets_at: asked + Duration::from_millis(ttl_ms.max(1) as u64),
        },
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
