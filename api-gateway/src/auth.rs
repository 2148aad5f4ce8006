//! Access-token verification with user-svc's public keys.
//!
//! The JWK set is cached for `rate_limit.jwks_cache_secs`. A token whose `kid` is unknown asks
//! for a refresh; refreshes run one at a time, outside the cache's lock (tokens of known keys
//! never wait for one), requests that wait for a refresh share its result, and at most one starts
//! per [`MIN_REFETCH`]. A `kid` still unknown after a refresh is remembered for [`UNKNOWN_FOR`]
//! and refused at once, so a stream of forged `kid`s costs user-svc one fetch a second and no
//! other request anything. Rotated keys are picked up without a restart and retired ones are
//! dropped within the cache lifetime. A token verified once is remembered (with its `exp`) until
//! the keys are fetched again, so a client's next requests skip the signature check; the
//! session is still checked on every request (`ratelimit`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use shared::{identity::Role, ApiError};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub sid: String,
    pub exp: u64,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
}

pub struct Verifier {
    jwks_url: String,
    /// After this the cached set is fetched again, so retired keys stop verifying.
    max_age: Duration,
    http: reqwest::Client,
    validation: Validation,
    /// Held only to read or swap the set, never across an await.
    cache: RwLock<Cache>,
    /// One refresh at a time; holds when the last one started.
    refresh: tokio::sync::Mutex<Option<Attempt>>,
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    started: Instant,
}

/// The shortest time between the starts of two fetches of the key set.
pub const MIN_REFETCH: Duration = Duration::from_secs(1);

/// How long a `kid` no refresh found is refused without another.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(10);

/// The most unknown `kid`s remembered; past it the memory starts again.
const MAX_UNKNOWN: usize = 10_000;

#[derive(Default)]
struct Cache {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
    /// Kids no refresh found, and when that refresh finished.
    unknown: HashMap<String, Instant>,
    /// Tokens whose signature and claims were verified with the keys above, with their `exp`:
    /// a token seen again is not verified again until it expires or the keys are fetched
    /// again (then a token of a retired key stops here too).
    verified: HashMap<String, (Verified, u64)>,
}

/// The most verified tokens remembered; past it the memory starts again.
const MAX_VERIFIED: usize = 10_000;

impl Cache {
    fn keys_fresh(&self, max_age: Duration) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() <= max_age)
    }

    fn fresh(&self, kid: &str, max_age: Duration) -> Option<DecodingKey> {
        if !self.keys_fresh(max_age) {
            return None;
        }
        self.any_age(kid)
    }

    fn any_age(&self, kid: &str) -> Option<DecodingKey> {
        let jwk = self.keys.as_ref()?.find(kid)?;
        DecodingKey::from_jwk(jwk).ok()
    }

    fn known_unknown(&self, kid: &str) -> bool {
        self.unknown
            .get(kid)
            .is_some_and(|at| at.elapsed() < UNKNOWN_FOR)
    }
}

impl Verifier {
    pub fn new(
        user_svc_url: &str,
        issuer: &str,
        audience: &str,
        max_age: Duration,
        http: reqwest::Client,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            jwks_url: format!(
                "{}/.well-known/jwks.json",
                user_svc_url.trim_end_matches('/')
            ),
            max_age,
            http,
            validation,
            cache: RwLock::new(Cache::default()),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// Verifies a bearer token: signature by a published key, `iss`, `aud`, `exp`.
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let invalid = || ApiError::unauthorized("invalid or expired access token");
        {
            let cache = self.read();
            if let (Some((verified, exp)), true) =
                (cache.verified.get(token), cache.keys_fresh(self.max_age))
            {
                // The same leeway as the validation's.
                if jsonwebtoken::get_current_timestamp() <= exp + self.validation.leeway {
                    return Ok(verified.clone());
                }
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let kid = header.kid.filter(|k| k.len() <= 128).ok_or_else(invalid)?;
        let key = self.key(&kid).await?.ok_or_else(invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|_| invalid())?;
        let user_id = Uuid::parse_str(&data.claims.sub).map_err(|_| invalid())?;
        let session_id = Uuid::parse_str(&data.claims.sid).map_err(|_| invalid())?;
        let verified = Verified {
            user_id,
            role: data.claims.role,
            session_id,
        };
        let mut cache = self.write();
        // Only while the keys it was checked with are still the cached ones.
        let published = cache.keys.as_ref().is_some_and(|k| k.find(&kid).is_some());
        if cache.keys_fresh(self.max_age) && published {
            if cache.verified.len() >= MAX_VERIFIED {
                cache.verified.clear();
            }
            let entry = (verified.clone(), data.claims.exp);
            cache.verified.insert(token.to_string(), entry);
        }
        Ok(verified)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, ApiError> {
        let stale = {
            let cache = self.read();
            if let Some(key) = cache.fresh(kid, self.max_age) {
                return Ok(Some(key));
            }
            if cache.known_unknown(kid) {
                return Ok(None);
            }
            cache.any_age(kid)
        };
        if let Some(stale) = stale {
            // A known key past the cache's lifetime: one request refreshes, the others use it
            // meanwhile, and a key retired since stops verifying once the refresh is in.
            let Ok(mut last) = self.refresh.try_lock() else {
                return Ok(Some(stale));
            };
            if last.is_some_and(|l| l.started.elapsed() < MIN_REFETCH) {
                return Ok(Some(stale));
            }
            self.refresh_now(&mut last).await?;
            return Ok(self.read().any_age(kid));
        }
        let asked = Instant::now();
        let mut last = self.refresh.lock().await;
        // A refresh that started after this request asked answers it too (one that started
        // before might predate a key made since).
        if !last.is_some_and(|l| l.started >= asked) {
            if let Some(since) = last.map(|l| l.started.elapsed()) {
                if since < MIN_REFETCH {
                    tokio::time::sleep(MIN_REFETCH - since).await;
                }
            }
            self.refresh_now(&mut last).await?;
        }
        drop(last);
        let mut cache = self.write();
        let key = cache.any_age(kid);
        if key.is_none() {
            if cache.unknown.len() >= MAX_UNKNOWN {
                cache.unknown.clear();
            }
            cache.unknown.insert(kid.to_string(), Instant::now());
        }
        Ok(key)
    }

    /// Fetches the set now (the caller holds the refresh lock) and keeps it. Without an answer
    /// the keys known so far stay: tokens of a key retired meanwhile stay valid until user-svc
    /// is back; without any key, nothing can be verified (503).
    async fn refresh_now(&self, last: &mut Option<Attempt>) -> Result<(), ApiError> {
        let started = Instant::now();
        let fetched = self.fetch().await;
        *last = Some(Attempt { started });
        let mut cache = self.write();
        match fetched {
            Some(keys) => {
                cache.keys = Some(keys);
                cache.fetched_at = Some(Instant::now());
                cache.verified.clear();
                Ok(())
            }
            None if cache.keys.is_none() => Err(ApiError::unavailable("user-svc")),
            None => Ok(()),
        }
    }

    async fn fetch(&self) -> Option<JwkSet> {
        let keys = self
            .http
            .get(&self.jwks_url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match keys {
            Ok(response) => response.json::<JwkSet>().await.ok(),
            Err(err) => {
                // While user-svc starts (or is down) every request asks again: one line every
                // few seconds, naming it.
                shared::unreachable::report(
                    "user-svc",
                    &self.jwks_url,
                    "the JWK set",
                    &err.to_string(),
                );
                None
            }
        }
    }

    /// Fetches the key set until it succeeds once, so the gateway can verify tokens even if
    /// user-svc goes down before the first authenticated request.
    pub async fn prefetch(&self, shutdown: tokio_util::sync::CancellationToken) {
        // `fetch` tells of each failure itself (one line every few seconds, naming user-svc).
        let fetch = || async { self.fetch().await.ok_or(()) };
        let waits = shared::unreachable::STORE;
        let fetched = shared::backoff::retry(waits, &shutdown, |_| true, fetch);
        if let Ok(keys) = fetched.await {
            let mut cache = self.write();
            cache.keys = Some(keys);
            cache.fetched_at = Some(Instant::now());
        }
    }

    /// Whether a key set has ever been loaded (readiness: without one no token verifies).
    pub async fn has_keys(&self) -> bool {
        self.read().keys.is_some()
    }
}
