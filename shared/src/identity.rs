//! The caller's identity, from the assertion that came with the request (see [`crate::internal`]).
//!
//! Services never read identity from plain headers: the gateway strips every client-sent
//! `x-taskmesh-*` header, and a service takes the user only from a verified assertion.

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

use crate::problem::ApiError;

/// Every header with this prefix is set by the gateway only; it strips client copies.
pub const INTERNAL_HEADER_PREFIX: &str = "x-taskmesh-";

// What an account may do: `admin` (everything), `member` (tasks and channels), `worker` (an
// automated worker's account). (Not a doc comment: the API's schema of `Role` has none.)
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Worker,
}

crate::text_enum!(Role, "role", { Admin = "admin", Member = "member", Worker = "worker" });

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Uuid,
    pub role: Role,
    /// The session (`sid` claim) the access token belongs to; a personal access token's id.
    pub session_id: Option<Uuid>,
    /// A personal access token's scopes; `None` for a signed-in session (everything its role
    /// allows).
    pub scopes: Option<crate::scopes::Scopes>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// `Ok` for an admin, 403 otherwise.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this action needs the admin role",
            ))
        }
    }
}

impl Identity {
    /// `Ok` for a session or a token with `scope`; 403 naming the scope otherwise.
    pub fn require_scope(&self, scope: crate::scopes::Scope) -> Result<(), ApiError> {
        match self.scopes {
            Some(scopes) if !scopes.contains(scope) => Err(crate::scopes::insufficient(scope)),
            _ => Ok(()),
        }
    }

    /// `Ok` for a signed-in session; 403 for a personal access token.
    pub fn require_session(&self) -> Result<(), ApiError> {
        match self.scopes {
            Some(_) => Err(crate::scopes::session_only()),
            None => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .and_then(|caller| caller.identity.clone())
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// The client's address as the gateway saw it (`unknown` for a call between services).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<Caller>()
            .and_then(|caller| caller.client_ip.clone())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientIp(ip))
    }
}

/// The source a client address counts as for per-address limits: an IPv4 address itself, an
/// IPv6 address its /64 (one subscriber's network: a client there can take any of its 2^64
/// addresses). Anything that is not an address counts as itself, cut to 64 bytes.
pub fn source_of(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// Who called, as the assertion says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The service that made the assertion (`api-gateway` for client requests).
    pub service: String,
    /// The user it acts for; `None` on a public route.
    pub identity: Option<Identity>,
    /// The client's address as the gateway saw it.
    pub client_ip: Option<String>,
}

impl Caller {
    /// A caller acting for `identity`.
    pub fn user(service: &str, identity: Identity, client_ip: Option<String>) -> Self {
        Self {
            service: service.to_string(),
            identity: Some(identity),
            client_ip,
        }
    }

    /// A caller acting for nobody in particular (a public route, a document fetch).
    pub fn anonymous(service: &str, client_ip: Option<String>) -> Self {
        Self {
            service: service.to_string(),
            identity: None,
            client_ip,
        }
    }

    /// For a route only the gateway's own machinery may use (the stream's audience question,
    /// the session check): 403 for a user's assertion or another service's, naming `what` the
    /// route is for.
    pub fn require_gateway_itself(&self, what: &str) -> Result<(), crate::ApiError> {
        if self.service == "api-gateway" && self.identity.is_none() {
            return Ok(());
        }
        Err(crate::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "internal_route",
            format!("this route answers {what} only"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{source_of, Role};

    #[test]
    fn roles_have_one_name_each() {
        crate::text_enum::assert_serde_names(Role::ALL, |r| r.as_str());
        assert_eq!("worker".parse::<Role>(), Ok(Role::Worker));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_ipv4_per_address() {
        assert_eq!(source_of("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(source_of("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_ne!(source_of("2001:db8:1:3::1"), source_of("2001:db8:1:2::1"));
        assert_eq!(source_of("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(source_of("192.0.2.7"), "192.0.2.7");
        assert_ne!(source_of("192.0.2.8"), source_of("192.0.2.7"));
    }
}
