//! Access-token verification with user-svc's public keys.
//!
//! The JWK set is cached for `rate_limit.jwks_cache_secs`; a token whose `kid` is unknown triggers
//! a refresh (at most one per 100 ms across all requests), so rotated keys are picked up without
//! a restart and retired ones are dropped within the cache lifetime.

use std::time::{Duration, Instant};

use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use shared::ApiError;
use tokio::sync::RwLock;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub sid: String,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user_id: Uuid,
    pub role: String,
    pub session_id: Uuid,
}

pub struct Verifier {
    jwks_url: String,
    /// After this the cached set is fetched again, so retired keys stop verifying.
    max_age: Duration,
    http: reqwest::Client,
    validation: Validation,
    cache: RwLock<Cache>,
}

/// The shortest time between two fetches of the key set.
const MIN_REFETCH: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Cache {
    keys: Option<JwkSet>,
    fetched_at: Option<Instant>,
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
        }
    }

    /// Verifies a bearer token: signature by a published key, `iss`, `aud`, `exp`.
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let invalid = || ApiError::unauthorized("invalid or expired access token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let key = self.key(&kid).await?.ok_or_else(invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|_| invalid())?;
        let user_id = Uuid::parse_str(&data.claims.sub).map_err(|_| invalid())?;
        let session_id = Uuid::parse_str(&data.claims.sid).map_err(|_| invalid())?;
        Ok(Verified {
            user_id,
            role: data.claims.role,
            session_id,
        })
    }

    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, ApiError> {
        if let Some(key) = self.cached(kid).await {
            return Ok(Some(key));
        }
        // One fetch at a time; requests for the same unknown kid queue here and find it.
        let mut cache = self.cache.write().await;
        if let Some(key) = Self::lookup(&cache, kid, self.max_age) {
            return Ok(Some(key));
        }
        // An unknown kid costs at most one fetch per interval, so forged kids cannot make the
        // gateway hammer user-svc; a kid minted just after a fetch waits for the next one.
        if let Some(since) = cache.fetched_at.map(|t| t.elapsed()) {
            if since < MIN_REFETCH {
                tokio::time::sleep(MIN_REFETCH - since).await;
            }
        }
        let keys = self
            .http
            .get(&self.jwks_url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let keys = match keys {
            Ok(response) => response.json::<JwkSet>().await.ok(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot fetch the JWK set");
                None
            }
        };
        let Some(keys) = keys else {
            // user-svc is down: keep verifying with the keys we know (tokens of a key retired
            // meanwhile stay valid until it is back); without any, nothing can be verified.
            return match cache.keys.as_ref() {
                Some(set) => Ok(set
                    .find(kid)
                    .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())),
                None => Err(ApiError::unavailable("user-svc")),
            };
        };
        cache.keys = Some(keys);
        cache.fetched_at = Some(Instant::now());
        Ok(Self::lookup(&cache, kid, self.max_age))
    }

    fn lookup(cache: &Cache, kid: &str, max_age: Duration) -> Option<DecodingKey> {
        if cache.fetched_at?.elapsed() > max_age {
            return None;
        }
        let jwk = cache.keys.as_ref()?.find(kid)?;
        DecodingKey::from_jwk(jwk).ok()
    }

    /// Fetches the key set until it succeeds once, so the gateway can verify tokens even if
    /// user-svc goes down before the first authenticated request.
    pub async fn prefetch(&self, shutdown: tokio_util::sync::CancellationToken) {
        let mut pause = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            if self.key("").await.is_ok() && self.cache.read().await.keys.is_some() {
                return;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Whether a key set has ever been loaded (readiness: without one no token verifies).
    pub async fn has_keys(&self) -> bool {
        self.cache.read().await.keys.is_some()
    }

    async fn cached(&self, kid: &str) -> Option<DecodingKey> {
        Self::lookup(&*self.cache.read().await, kid, self.max_age)
    }
}
