//! Signing keys as admins see them, and which may be retired.
//!
//! Rotation without downtime: rotate adds a key that signs from now on while the previous one
//! stays published, so tokens it signed keep verifying; once they have expired (15 minutes),
//! retire the old key and the gateway refuses anything still signed with it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::UserError;

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyList {
    /// The key that signs new tokens.
    pub signing: String,
    pub items: Vec<KeyInfo>,
}

/// `kid` may be retired if it is active (`active`, newest first) and does not sign.
pub fn check_retirable(active: &[String], kid: &str) -> Result<(), UserError> {
    if !active.iter().any(|k| k == kid) {
        return Err(UserError::NotFound("active key"));
    }
    if active.first().map(String::as_str) == Some(kid) {
        return Err(UserError::conflict(
            "signing_key",
            "this key signs new tokens; rotate first, then retire it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_published_key_that_no_longer_signs_retires() {
        let active = ["new".to_string(), "old".to_string()];
        assert!(check_retirable(&active, "old").is_ok());
        assert!(matches!(
            check_retirable(&active, "new"),
            Err(UserError::Conflict { .. })
        ));
        assert!(matches!(
            check_retirable(&active, "gone"),
            Err(UserError::NotFound(_))
        ));
    }
}
