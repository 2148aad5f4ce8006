//! `Idempotency-Key` on POST: the first request with a key runs and its response is kept for
//! 24 hours; the same key with the same body replays that response (with
//! `Idempotent-Replayed: true`), the same key with a different body is 422, and a key whose first
//! request is still running is 409. Keys are scoped to the caller (user, or IP on public routes)
//! and the path. A 5xx answer is not kept, so the client can retry. Without Redis, requests that
//! carry a key are refused with 503 rather than risk running twice.
//!
//! A kept answer's body is sealed ([`shared::seal`]) under a key derived from the gateways' key
//! (from `internal.secret`), the scope and the `Idempotency-Key` itself: Redis holds no answer
//! anyone can read (a new webhook's signing secret, say) without the key the client chose.

use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{engine::general_purpose::STANDARD, Engine};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::seal::SealKey;
use shared::signing::{lines, MacKey};
use shared::ApiError;

pub const HEADER: &str = "idempotency-key";
const TTL_SECS: u64 = 24 * 3600;
/// How long a first request may run before its key is released.
const PENDING_SECS: u64 = 60;
/// Headers of the first response that a replay repeats.
const KEPT_HEADERS: [&str; 4] = ["content-type", "location", "etag", "x-request-id"];

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
enum Entry {
    Pending {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

/// What to do with a request that carries a key.
pub enum Begin {
    /// Run it, then [`Guard::finish`] with its response.
    Proceed(Guard),
    /// Answer with the kept response.
    Replay(Response),
}

pub struct Guard {
    redis: ConnectionManager,
    key: String,
    fingerprint: String,
    /// Seals the kept answer's body.
    seal: SealKey,
}

/// The key a kept answer for `key` in `scope` is sealed with.
fn seal_key(answers: &MacKey, scope: &str, key: &str) -> SealKey {
    SealKey::derived(answers, &lines(&[scope, key]))
}

/// Reads and checks the key header; `None` when the request has none.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_string()))
}

pub async fn begin(
    state: &crate::AppState,
    scope: &str,
    key: &str,
    body: &Bytes,
) -> Result<Begin, ApiError> {
    let (redis, prefix) = (&state.redis, &state.config.redis.key_prefix);
    let seal = seal_key(&state.answers, scope, key);
    let fingerprint = hex(&Sha256::digest(body));
    let redis_key = format!(
        "{prefix}idempotency:{}",
        hex(&Sha256::digest(format!("{scope}\n{key}")))
    );
    let mut conn = redis.clone();
    let unavailable = |e: redis::RedisError| {
        tracing::warn!(error = %e, "idempotency store unavailable");
        ApiError::unavailable("redis")
    };
    let pending = serde_json::to_string(&Entry::Pending {
        fingerprint: fingerprint.clone(),
    })
    .map_err(ApiError::internal)?;
    let claimed: Option<String> = redis::cmd("SET")
        .arg(&redis_key)
        .arg(&pending)
        .arg("NX")
        .arg("EX")
        .arg(PENDING_SECS)
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    if claimed.is_some() {
        return Ok(Begin::Proceed(Guard {
            redis: redis.clone(),
            key: redis_key,
            fingerprint,
            seal,
        }));
    }
    let existing: Option<String> = redis::cmd("GET")
        .arg(&redis_key)
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    let entry = existing.and_then(|e| serde_json::from_str::<Entry>(&e).ok());
    match entry {
        Some(Entry::Done {
            fingerprint: first, ..
        })
        | Some(Entry::Pending { fingerprint: first })
            if first != fingerprint =>
        {
            Err(ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body",
            ))
        }
        Some(Entry::Done {
            status,
            headers,
            body,
            ..
        }) => {
            let body = STANDARD.decode(body).ok().and_then(|b| seal.open(&b));
            let body = body.ok_or_else(|| {
                ApiError::unprocessable(
                    "idempotency_key_reused",
                    "the answer kept for this Idempotency-Key cannot be read (it was kept under another internal.secret); use a new key",
                )
            })?;
            Ok(Begin::Replay(replay(status, headers, body)))
        }
        // Still running, or expired between SET and GET: the client may retry shortly.
        Some(Entry::Pending { .. }) | None => Err(ApiError::conflict(
            "idempotency_key_in_progress",
            "a request with this Idempotency-Key is still running",
        )
        .with_retry_after(1)),
    }
}

impl Guard {
    /// Keeps a final response for replays (a 5xx releases the key instead).
    pub async fn finish(self, status: StatusCode, headers: &HeaderMap, body: &Bytes) {
        let mut conn = self.redis.clone();
        let result: redis::RedisResult<()> = if status.is_server_error() {
            redis::cmd("DEL")
                .arg(&self.key)
                .query_async(&mut conn)
                .await
        } else {
            let kept = KEPT_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = headers.get(*name)?.to_str().ok()?;
                    Some((name.to_string(), value.to_string()))
                })
                .collect();
            let entry = Entry::Done {
                fingerprint: self.fingerprint,
                status: status.as_u16(),
                headers: kept,
                body: STANDARD.encode(self.seal.seal(body)),
            };
            match serde_json::to_string(&entry) {
                Ok(value) => {
                    redis::cmd("SET")
                        .arg(&self.key)
                        .arg(value)
                        .arg("EX")
                        .arg(TTL_SECS)
                        .query_async(&mut conn)
                        .await
                }
                Err(_) => Ok(()),
            }
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "cannot record an idempotent response");
        }
    }
}

fn replay(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
