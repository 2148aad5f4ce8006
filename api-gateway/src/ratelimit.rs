//! Rate limits in Redis: a fixed window per route class and subject (user or IP), counted by one
//! atomic script, so the limit is exact under concurrency and shared by every gateway replica.
//!
//! Every limited response carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-
//! ratelimit-headers); a refused one is 429 with `Retry-After`. When Redis is down the gateway
//! serves without limits (logged, counted in `taskmesh_ratelimit_unavailable_total`); logins
//! still fail closed because user-svc's own attempt limits need Redis.

use axum::http::{HeaderMap, HeaderValue};
use redis::{aio::ConnectionManager, Script};

/// Counts one request in the current window; returns the count and seconds until it resets.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
return {n, ttl}
";

/// For authenticated requests: the session must be live (`KEYS[1]` exists), then the request is
/// counted like [`HIT`], in one round trip. `{-1, 0}` means the session has ended.
const SESSION_AND_HIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[2])
return {n, ttl}
";

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

/// What Redis said about a request.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Counted(Decision),
    /// The request's session is not live.
    SessionEnded,
    /// Redis could not be asked: serve without the checks (logged and counted).
    Unavailable,
}

/// Counts a request of `subject` under `policy`; with `session`, first checks that the session
/// key exists, in the same round trip.
pub async fn check(
    redis: &ConnectionManager,
    prefix: &str,
    policy: Policy,
    subject: &str,
    session: Option<&str>,
) -> Outcome {
    let key = format!("{prefix}ratelimit:{}:{subject}", policy.name);
    let mut conn = redis.clone();
    let result: redis::RedisResult<(i64, i64)> = match session {
        Some(session_key) => {
            Script::new(SESSION_AND_HIT)
                .key(session_key)
                .key(key)
                .arg(policy.window_secs)
                .invoke_async(&mut conn)
                .await
        }
        None => {
            Script::new(HIT)
                .key(key)
                .arg(policy.window_secs)
                .invoke_async(&mut conn)
                .await
        }
    };
    match result {
        Ok((-1, _)) => Outcome::SessionEnded,
        Ok((count, ttl)) => {
            let count = count.max(0) as u64;
            Outcome::Counted(Decision {
                policy,
                allowed: count <= policy.limit,
                remaining: policy.limit.saturating_sub(count),
                reset_secs: ttl.max(1) as u64,
            })
        }
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
