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
/// Every header with this prefix is set by the gateway only; it strips client copies.
pub const INTERNAL_HEADER_PREFIX: &str = "x-taskmesh-";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: Uuid,
    pub role: String,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
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
        Ok(Identity { user_id, role })
    }
}
