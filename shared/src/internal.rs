//! Trust between services (decision 28): every request to a service carries an assertion that
//! only a holder of `internal.secret` can make.
//!
//! The assertion is an HS256 JWT in `x-taskmesh-assertion`, minted per request by the caller (the
//! gateway after it verified the access token, or a service calling another). It names the caller
//! (`iss`), the service it is for (`aud`), the request's method and path (`htm`, `htp`), the user
//! it acts for (`sub`, `role`, `sid`: absent for a public route) and the client's address (`ip`),
//! and lapses after [`TTL`] (plus 5 s for clock skew). A service refuses every request without a valid one for itself with
//! 401, except its probes and metrics; bare `x-taskmesh-*` headers grant nothing.
//!
//! Clients never see the secret; workers are not given it (they call no service), so a job's code
//! cannot mint one either.

use std::sync::Arc;
use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::{Identity, Role};
use crate::problem::ApiError;

/// The header that carries the assertion.
pub const HEADER_ASSERTION: &str = "x-taskmesh-assertion";

/// How long an assertion is accepted after it was made (plus a few seconds of clock skew).
pub const TTL: Duration = Duration::from_secs(30);

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
    htm: String,
    htp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
}

/// Makes and checks assertions with the shared secret, as service `service`.
///
/// Made from the config with [`Trust::from_config`].
pub struct Trust {
    service: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `internal.accepted_secret` during a rotation: assertions made with it pass too.
    accepted: Option<DecodingKey>,
    validation: Validation,
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

    /// [`Trust::new`] that also accepts assertions made with `accepted` (never signing with it),
    /// for a rotation.
    pub fn rotating(
        service: &'static str,
        secret: Option<&SecretString>,
        accepted: Option<&SecretString>,
    ) -> Result<Self, MissingSecret> {
        let accepted = accepted
            .map(|s| s.expose_secret().as_bytes())
            .filter(|s| s.len() >= MIN_SECRET_BYTES)
            .map(DecodingKey::from_secret);
        let secret = secret
            .map(|s| s.expose_secret().as_bytes())
            .filter(|s| s.len() >= MIN_SECRET_BYTES)
            .ok_or(MissingSecret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[service]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 5;
        Ok(Self {
            service,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            accepted,
            validation,
        })
    }

    /// The trust of `service` from `internal.secret` and `internal.accepted_secret`.
    pub fn from_config(
        service: &'static str,
        config: &crate::config::InternalConfig,
    ) -> Result<Self, MissingSecret> {
        Self::rotating(
            service,
            config.secret.as_ref(),
            config.accepted_secret.as_ref(),
        )
    }

    /// This service's name, as its assertions give it.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// An assertion for one request to service `to`: `method` and `path` (without the query) as
    /// the receiver will see them, acting for `caller`'s user and client address.
    pub fn mint(&self, to: &str, method: &Method, path: &str, caller: &Caller) -> HeaderValue {
        let exp = jsonwebtoken::get_current_timestamp() + TTL.as_secs();
        let identity = caller.identity.as_ref();
        let claims = Claims {
            iss: self.service.to_string(),
            aud: to.to_string(),
            exp,
            htm: method.as_str().to_string(),
            htp: path.to_string(),
            sub: identity.map(|i| i.user_id),
            role: identity.map(|i| i.role),
            sid: identity.and_then(|i| i.session_id),
            ip: caller.client_ip.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail");
        HeaderValue::from_str(&token).expect("a JWT is a valid header value")
    }

    /// The caller of a request to this service, if its assertion is valid for exactly this
    /// method and path.
    pub fn verify(&self, request: &Request) -> Result<Caller, ApiError> {
        let refused = || {
            ApiError::unauthorized(
                "this service accepts requests only through the gateway or from another Taskmesh service",
            )
        };
        let token = request
            .headers()
            .get(HEADER_ASSERTION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(refused)?;
        let decode =
            |key: &DecodingKey| jsonwebtoken::decode::<Claims>(token, key, &self.validation);
        let claims = match (decode(&self.decoding), &self.accepted) {
            (Ok(data), _) => data.claims,
            (Err(_), Some(accepted)) => decode(accepted).map_err(|_| refused())?.claims,
            (Err(_), None) => return Err(refused()),
        };
        if claims.htm != request.method().as_str() || claims.htp != request.uri().path() {
            return Err(refused());
        }
        let identity = match (claims.sub, claims.role) {
            (Some(user_id), Some(role)) => Some(Identity {
                user_id,
                role,
                session_id: claims.sid,
            }),
            (None, None) => None,
            _ => return Err(refused()),
        };
        Ok(Caller {
            service: claims.iss,
            identity,
            client_ip: claims.ip,
        })
    }
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

/// Middleware: a request without a valid assertion for this service is a 401; a valid one puts
/// its [`Caller`] in the request's extensions for [`Identity`] and handlers to read.
pub async fn require(
    State(trust): State<Arc<Trust>>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match trust.verify(&request) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn trust(service: &'static str, secret: &str) -> Trust {
        Trust::new(service, Some(&SecretString::from(secret.to_string()))).unwrap()
    }

    fn request(method: Method, path: &str, assertion: Option<HeaderValue>) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        if let Some(value) = assertion {
            builder = builder.header(HEADER_ASSERTION, value);
        }
        builder.body(Body::empty()).unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_assertion_holds_for_its_service_method_and_path_only() {
        let gateway = trust("api-gateway", SECRET);
        let users = trust("user-svc", SECRET);
        let identity = Identity {
            user_id: Uuid::now_v7(),
            role: Role::Member,
            session_id: Some(Uuid::now_v7()),
        };
        let caller = Caller::user("api-gateway", identity.clone(), Some("192.0.2.1".into()));
        let minted = gateway.mint("user-svc", &Method::GET, "/api/v1/users/me", &caller);
        let seen = users
            .verify(&request(
                Method::GET,
                "/api/v1/users/me?x=1",
                Some(minted.clone()),
            ))
            .unwrap();
        assert_eq!(seen, caller);
        // Another path, another method, another service, no assertion, another secret.
        for (method, path) in [
            (Method::GET, "/api/v1/users"),
            (Method::DELETE, "/api/v1/users/me"),
        ] {
            assert!(users
                .verify(&request(method, path, Some(minted.clone())))
                .is_err());
        }
        let tasks = trust("task-svc", SECRET);
        let get_me = || request(Method::GET, "/api/v1/users/me", Some(minted.clone()));
        assert!(tasks.verify(&get_me()).is_err());
        assert!(users
            .verify(&request(Method::GET, "/api/v1/users/me", None))
            .is_err());
        let other = trust("user-svc", "another secret of at least 32 bytes!!");
        assert!(other.verify(&get_me()).is_err());
        // During a rotation the old secret still passes, next to the new one.
        let new = SecretString::from("another secret of at least 32 bytes!!".to_string());
        let old = SecretString::from(SECRET.to_string());
        let rotating = Trust::rotating("user-svc", Some(&new), Some(&old)).unwrap();
        assert!(rotating.verify(&get_me()).is_ok());
    }

    #[test]
    fn a_short_or_missing_secret_is_refused() {
        assert!(Trust::new("user-svc", None).is_err());
        let short = SecretString::from("too short".to_string());
        assert!(Trust::new("user-svc", Some(&short)).is_err());
    }
}
