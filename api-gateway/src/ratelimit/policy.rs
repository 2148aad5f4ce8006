//! A route class's limit, and the decision on one request with the headers it writes.

use axum::http::{HeaderMap, HeaderValue};

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
