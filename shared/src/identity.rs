//! The caller's identity as the gateway verified it.
//!
//! The gateway verifies the access token, removes any identity headers a client sent, and passes
//! the verified user id and role in `x-taskmesh-user-id` / `x-taskmesh-role`. Services listen on
//! the internal network only and take the identity from these headers.

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

use crate::problem::ApiError;

pub const HEADER_USER_ID: &str = "x-taskmesh-user-id";
pub const HEADER_ROLE: &str = "x-taskmesh-role";
pub const HEADER_SESSION_ID: &str = "x-taskmesh-session-id";
/// The client's address as the gateway saw it (for per-IP limits).
pub const HEADER_CLIENT_IP: &str = "x-taskmesh-client-ip";
/// Every header with this prefix is set by the gateway only; it strips client copies.
pub const INTERNAL_HEADER_PREFIX: &str = "x-taskmesh-";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Uuid,
    pub role: String,
    /// The session (`sid` claim) the access token belongs to.
    pub session_id: Option<Uuid>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
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

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let user_id = header(HEADER_USER_ID)
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| ApiError::unauthorized("authentication required"))?;
        let role = header(HEADER_ROLE)
            .ok_or_else(|| ApiError::unauthorized("authentication required"))?
            .to_string();
        let session_id = header(HEADER_SESSION_ID).and_then(|v| Uuid::parse_str(v).ok());
        Ok(Identity {
            user_id,
            role,
            session_id,
        })
    }
}
