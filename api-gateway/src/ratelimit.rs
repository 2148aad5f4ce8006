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

/// Counts a request of `subject` under `policy`. `None` when Redis cannot be asked.
pub async fn check(
    redis: &ConnectionManager,
    prefix: &str,
    policy: Policy,
    subject: &str,
) -> Option<Decision> {
    let key = format!("{prefix}ratelimit:{}:{subject}", policy.name);
    let mut conn = redis.clone();
    let result: redis::RedisResult<(u64, i64)> = Script::new(HIT)
        .key(key)
        .arg(policy.window_secs)
        .invoke_async(&mut conn)
        .await;
    match result {
        Ok((count, ttl)) => Some(Decision {
            policy,
            allowed: count <= policy.limit,
            remaining: policy.limit.saturating_sub(count),
            reset_secs: ttl.max(1) as u64,
        }),
        Err(err) => {
            tracing::warn!(error = %err, "rate limiter unavailable; serving without limits");
            metrics::counter!("taskmesh_ratelimit_unavailable_total").increment(1);
            None
        }
    }
}
