//! Trust between services (decision 28, decision 37): every request to a service carries an
//! assertion that only a holder of `internal.secret` can make, and that is good for that one
//! request only.
//!
//! The assertion is an HS256 JWT in `x-taskmesh-assertion`, minted per request by the caller (the
//! gateway after it verified the access token, or a service calling another). It names the caller
//! (`iss`), the service it is for (`aud`), the request's method, path and query (`htm`, `htp`,
//! `htq`), the SHA-256 of its body (`bd`; a streamed upload carries its declared length, `bl`,
//! instead), the user it acts for (`sub`, `role`, `sid`: absent for a public route) and the
//! client's address (`ip`). It is one-time: its `jti` is remembered by the service for as long as
//! the assertion could be valid, and a second request with it is refused. It is valid from its
//! `nbf` for [`TTL`] (plus [`LEEWAY`] of clock skew either way). A service refuses every request
//! without a valid one for itself with 401, except its probes and metrics; bare `x-taskmesh-*`
//! headers grant nothing.
//!
//! Clients never see the secret; workers are not given it (they call no service), so a job's code
//! cannot mint one either.

pub mod keys;
mod seen;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::identity::{Identity, Role};
use crate::problem::ApiError;
use keys::SERVICES;

/// The header that carries the assertion.
pub const HEADER_ASSERTION: &str = "x-taskmesh-assertion";

/// How long an assertion is accepted after it was made (plus [`LEEWAY`] of clock skew).
pub const TTL: Duration = Duration::from_secs(10);

/// The clock skew tolerated between two services, either way.
pub const LEEWAY: Duration = Duration::from_secs(5);

/// The largest body a service reads to check an assertion's digest (more than the gateway
/// forwards, 1 MiB; streamed uploads are not read here).
pub const MAX_CHECKED_BODY: usize = 2 * 1024 * 1024;

/// `bd` of a streamed body, which is not read before the handler: `bl` binds its length.
const STREAMED: &str = "streamed";

pub use crate::config::MIN_SECRET_BYTES;
pub use crate::identity::Caller;

/// Paths a service answers without an assertion: its probes and metrics (scraped by the platform
/// around it, never routed by the gateway) and the public half of user-svc's signing keys.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/.well-known/jwks.json"];

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    exp: u64,
    nbf: u64,
    /// One-time identifier: 32 hex digits.
    jti: String,
    htm: String,
    htp: String,
    /// The query, without `?`; absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    htq: Option<String>,
    /// The body's SHA-256 (URL-safe base64 without padding), or [`STREAMED`].
    bd: String,
    /// A streamed body's declared length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    /// A personal access token's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scp: Option<crate::scopes::Scopes>,
}

/// Makes and checks assertions as service `service`, with a key per pair of caller and callee
/// ([`keys`]).
///
/// Made from the config with [`Trust::from_config`].
pub struct Trust {
    service: &'static str,
    /// HS256, `kid` naming this service (the caller: the callee picks its key by it).
    header: Header,
    /// Callee → the key this service signs for it with.
    signing: HashMap<String, EncodingKey>,
    /// Caller → the keys its assertions to this service are checked with (during a rotation,
    /// the accepted one second).
    checking: HashMap<String, Vec<DecodingKey>>,
    validation: Validation,
    /// The `jti`s of the assertions accepted within their possible life.
    seen: seen::Seen,
}

/// The body of a request an assertion is minted for.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Sent whole: its digest is bound (empty for a `GET`).
    Bytes(&'a [u8]),
    /// Streamed through (an upload): only its declared length is bound.
    Streamed { length: Option<u64> },
}

impl Payload<'static> {
    /// No body.
    pub const EMPTY: Self = Payload::Bytes(&[]);
}

fn digest(bytes: &[u8]) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// `internal.secret` is missing or too short.
#[derive(Debug, thiserror::Error)]
#[error(
    "internal.secret (TASKMESH_INTERNAL__SECRET) must be set to the same value of at least {MIN_SECRET_BYTES} bytes in every service; `openssl rand -base64 32` makes one"
)]
pub struct MissingSecret;

impl Trust {
    /// The trust of service `service`, from `internal.secret`.
    pub fn new(
        service: &'static str,
        secret: Option<&SecretString>,
    ) -> Result<Self, MissingSecret> {
        Self::rotating(service, secret, None)
    }

    /// [`Trust::new`] that also accepts assertions made under `accepted` (never signing with
    /// it), for a rotation.
    pub fn rotating(
        service: &'static str,
        secret: Option<&SecretString>,
        accepted: Option<&SecretString>,
    ) -> Result<Self, MissingSecret> {
        let usable = |s: &&SecretString| s.expose_secret().len() >= MIN_SECRET_BYTES;
        let secret = secret.filter(usable).ok_or(MissingSecret)?;
        let accepted = accepted.filter(usable);
        let mut trust = Self::empty(service);
        let callers = SERVICES.iter().copied().chain([service]);
        for caller in callers {
            let keys = [Some(secret), accepted]
                .into_iter()
                .flatten()
                .map(|s| {
                    DecodingKey::from_secret(&keys::derive(
                        s.expose_secret().as_bytes(),
                        caller,
                        service,
                    ))
                })
                .collect();
            trust.checking.insert(caller.to_string(), keys);
            let signing = keys::derive(secret.expose_secret().as_bytes(), service, caller);
            let signing = EncodingKey::from_secret(&signing);
            trust.signing.insert(caller.to_string(), signing);
        }
        Ok(trust)
    }

    /// The trust of `service` from the config: its own pairs' keys (`internal.keys`, and
    /// `internal.accepted_keys` during a rotation) when given, else `internal.secret` (and
    /// `internal.accepted_secret`).
    pub fn from_config(
        service: &'static str,
        config: &crate::config::InternalConfig,
    ) -> anyhow::Result<Self> {
        let Some(text) = &config.keys else {
            let secret = config.secret.as_ref();
            return Ok(Self::rotating(
                service,
                secret,
                config.accepted_secret.as_ref(),
            )?);
        };
        let pairs = keys::Pairs::parse(service, text, false)?;
        let accepted = match &config.accepted_keys {
            Some(text) => keys::Pairs::parse(service, text, true)?,
            None => keys::Pairs::default(),
        };
        let mut trust = Self::empty(service);
        for (callee, key) in &pairs.signing {
            trust
                .signing
                .insert(callee.clone(), EncodingKey::from_secret(key));
        }
        for (caller, key) in pairs.checking.iter().chain(&accepted.checking) {
            let keys = trust.checking.entry(caller.clone()).or_default();
            keys.push(DecodingKey::from_secret(key));
        }
        Ok(trust)
    }

    fn empty(service: &'static str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[service]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY.as_secs();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(service.to_string());
        Self {
            service,
            header,
            signing: HashMap::new(),
            checking: HashMap::new(),
            validation,
            // Valid from nbf - leeway to nbf + TTL + leeway by the receiver's clock, compared in
            // whole seconds (so up to a second more): remembered a little longer than that.
            seen: seen::Seen::new(TTL + LEEWAY * 2 + Duration::from_secs(2)),
        }
    }

    /// This service's name, as its assertions give it.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The key to sign for `to` with: its pair's, else one nobody accepts (a call this
    /// deployment's keys do not provide for, or not a Taskmesh service).
    fn signing_key(&self, to: &str) -> std::borrow::Cow<'_, EncodingKey> {
        use std::borrow::Cow;
        if let Some(key) = self.signing.get(to) {
            return Cow::Borrowed(key);
        }
        tracing::error!(
            caller = self.service,
            callee = to,
            "no assertion key for this call; it will be refused"
        );
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        Cow::Owned(EncodingKey::from_secret(&key))
    }

    /// An assertion for one request to service `to`: `method` and `target` (the path, with the
    /// query if any) as the receiver will see them, with `payload` as its body, acting for
    /// `caller`'s user and client address. Good for one request only.
    pub fn mint(
        &self,
        to: &str,
        method: &Method,
        target: &str,
        payload: Payload<'_>,
        caller: &Caller,
    ) -> HeaderValue {
        use rand::RngCore;
        let now = jsonwebtoken::get_current_timestamp();
        let identity = caller.identity.as_ref();
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let (bd, bl) = match payload {
            Payload::Bytes(bytes) => (digest(bytes), None),
            Payload::Streamed { length } => (STREAMED.to_string(), length),
        };
        let mut jti = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut jti);
        let claims = Claims {
            iss: self.service.to_string(),
            aud: to.to_string(),
            exp: now + TTL.as_secs(),
            nbf: now,
            jti: hex::encode(jti),
            htm: method.as_str().to_string(),
            htp: path.to_string(),
            htq: query.filter(|q| !q.is_empty()).map(str::to_string),
            bd,
            bl,
            sub: identity.map(|i| i.user_id),
            role: identity.map(|i| i.role),
            sid: identity.and_then(|i| i.session_id),
            ip: caller.client_ip.clone(),
            scp: identity.and_then(|i| i.scopes),
        };
        let key = self.signing_key(to);
        let token = jsonwebtoken::encode(&self.header, &claims, &key)
            .expect("HS256 signing of plain claims cannot fail");
        HeaderValue::from_str(&token).expect("a JWT is a valid header value")
    }

    /// `request` with its [`Caller`] in its extensions (and its body, read to check its digest,
    /// put back), if its assertion is valid for this service and exactly this method, path,
    /// query and body, and was not used before.
    pub async fn admit(&self, request: Request) -> Result<Request, ApiError> {
        let (parts, body) = request.into_parts();
        let claims = self.claims(&parts)?;
        let body = match (claims.bd.as_str(), claims.bl) {
            (STREAMED, length) => {
                let declared = parts
                    .headers
                    .get(axum::http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared != length {
                    return Err(refused());
                }
                body
            }
            (expected, _) => {
                let bytes = axum::body::to_bytes(body, MAX_CHECKED_BODY)
                    .await
                    .map_err(|_| {
                        ApiError::new(
                            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            format!("a request body here is at most {MAX_CHECKED_BODY} bytes"),
                        )
                    })?;
                if digest(&bytes) != expected {
                    return Err(refused());
                }
                Body::from(bytes)
            }
        };
        let identity = match (claims.sub, claims.role) {
            (Some(user_id), Some(role)) => Some(Identity {
                user_id,
                role,
                session_id: claims.sid,
                scopes: claims.scp,
            }),
            (None, None) => None,
            _ => return Err(refused()),
        };
        let mut request = Request::from_parts(parts, body);
        request.extensions_mut().insert(Caller {
            service: claims.iss,
            identity,
            client_ip: claims.ip,
        });
        Ok(request)
    }

    /// The claims of the request's assertion, if it is signed for this service, names this
    /// method, path and query, and is used for the first time.
    fn claims(&self, parts: &axum::http::request::Parts) -> Result<Claims, ApiError> {
        let token = parts
            .headers
            .get(HEADER_ASSERTION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(refused)?;
        // The caller names itself in `kid`, which picks the key; the claims must agree.
        let caller = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|header| header.kid)
            .ok_or_else(refused)?;
        let keys = self.checking.get(&caller).ok_or_else(refused)?;
        let claims = keys
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Claims>(token, key, &self.validation).ok())
            .ok_or_else(refused)?
            .claims;
        if claims.iss != caller {
            return Err(refused());
        }
        let query = parts.uri.query().filter(|q| !q.is_empty());
        if claims.htm != parts.method.as_str()
            || claims.htp != parts.uri.path()
            || claims.htq.as_deref() != query
            || claims.nbf > claims.exp
            || claims.exp - claims.nbf > TTL.as_secs()
        {
            return Err(refused());
        }
        let jti = match claims.jti.len() {
            32 => u128::from_str_radix(&claims.jti, 16).map_err(|_| refused())?,
            _ => return Err(refused()),
        };
        if !self.seen.first(jti) {
            tracing::warn!(
                caller = %claims.iss,
                method = %parts.method,
                path = %parts.uri.path(),
                "an assertion was presented a second time; refused"
            );
            return Err(refused());
        }
        Ok(claims)
    }
}

fn refused() -> ApiError {
    ApiError::unauthorized(
        "this service accepts requests only through the gateway or from another Taskmesh service",
    )
}

/// A MAC key of its own for `purpose`, derived from `internal.secret` (which the services hold
/// and workers do not).
pub fn purpose_key(
    config: &crate::config::InternalConfig,
    purpose: &str,
) -> Result<crate::signing::MacKey, MissingSecret> {
    let secret = config.secret.as_ref().ok_or(MissingSecret)?;
    Ok(crate::signing::MacKey::derived(
        secret.expose_secret().as_bytes(),
        purpose,
    ))
}

/// A fresh random secret (64 hex digits), for a launcher that runs every service itself.
pub fn generate_secret() -> SecretString {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(hex)
}

/// The header a service's refusal of an assertion carries, so that the gateway tells its own
/// faults (a clock off, parts of two versions) from a client's.
pub const HEADER_REFUSED: &str = "x-taskmesh-refused";

/// Middleware: a request without a valid assertion for this service is a 401 (with
/// [`HEADER_REFUSED`]); a valid one puts its [`Caller`] in the request's extensions for
/// [`Identity`] and handlers to read.
pub async fn require(State(trust): State<Arc<Trust>>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match trust.admit(request).await {
        Ok(request) => next.run(request).await,
        Err(err) => {
            let mut response = err.into_response();
            if response.status() == axum::http::StatusCode::UNAUTHORIZED {
                let refused = HeaderValue::from_static("assertion");
                response.headers_mut().insert(HEADER_REFUSED, refused);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests;
