//! Personal access tokens between user-svc (which makes, keeps and revokes them) and the gateway
//! (which admits requests with them): their shape, what is kept of one, and the internal route
//! that says whom a token stands for.
//!
//! A token is `tmk_` and 43 characters (32 random bytes, URL-safe base64), so secret scanners can
//! find leaked ones. Only its SHA-256 is kept, and only the SHA-256 travels between services. A
//! token's id is a session to the gateway: it is live while user-svc keeps its key in the
//! session mirror ([`crate::sessions`]), so revoking one takes effect at once on every gateway.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::identity::Role;
use crate::scopes::Scopes;

/// What every token starts with.
pub const PREFIX: &str = "tmk_";

/// The length of a token, prefix included.
pub const LENGTH: usize = PREFIX.len() + 43;

/// Whether `bearer` is meant as a personal access token (not a session's JWT).
pub fn is_token(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

/// What is kept of a token, and asked about.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// user-svc's route that says whom a live token stands for (the gateway's alone).
pub const VERIFY_PATH: &str = "/internal/v1/tokens/verify";

/// The question to [`VERIFY_PATH`]: the token's [`hash`], in hex.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    pub token_hash: String,
}

/// The answer for a live token (404 for anything else: unknown, revoked, expired, its owner
/// deactivated). Answering also records the token's use.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub token_id: Uuid,
    pub user_id: Uuid,
    /// The role it acts with: an admin's token without `admin` acts as a member.
    pub role: Role,
    /// Its scopes (`admin` only while its owner is an admin).
    pub scopes: Scopes,
}
