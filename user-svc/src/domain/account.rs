//! An account: the user as the API shows it, its fields' rules, and what a change changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::identity::Role;
use uuid::Uuid;

use crate::error::UserError;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub active: bool,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

/// A parsed e-mail address: trimmed, at most 254 characters, one `@` with text on both sides.
pub fn parse_email(raw: &str) -> Result<String, UserError> {
    let email = raw.trim();
    let valid = email.len() <= 254
        && email.split('@').count() == 2
        && email.split('@').all(|part| !part.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_string())
    } else {
        Err(UserError::invalid(
            "invalid_email",
            "email must be an address like name@example.com",
        ))
    }
}

/// 1 to 100 printable characters, trimmed.
pub fn parse_display_name(raw: &str) -> Result<String, UserError> {
    shared::text::one_line(raw, 100)
        .map(str::to_string)
        .ok_or_else(|| {
            UserError::invalid(
                "invalid_display_name",
                "display_name must be 1 to 100 printable characters",
            )
        })
}

/// A partial update of a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Change {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

impl Change {
    /// Whether applying it ends the user's sessions: a deactivated user is signed out at once,
    /// and so is one whose role changed, because their access tokens carry the old role.
    pub fn signs_out(&self) -> bool {
        self.active == Some(false) || self.role.is_some()
    }
}

/// An admin may not change their own role or deactivate themselves.
pub fn check_admin_change(admin: Uuid, target: Uuid, change: &Change) -> Result<(), UserError> {
    if admin == target && change.signs_out() {
        return Err(UserError::conflict(
            "own_account",
            "an admin cannot change their own role or deactivate themselves",
        ));
    }
    Ok(())
}

/// The names of the fields that differ between `before` and `after`, for `user.updated`.
pub fn changed_fields(before: &User, after: &User) -> Vec<String> {
    let mut changed = Vec::new();
    if after.display_name != before.display_name {
        changed.push("display_name".to_string());
    }
    if after.role != before.role {
        changed.push("role".to_string());
    }
    if after.active != before.active {
        changed.push("active".to_string());
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            parse_email("  ada@example.com ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "a da@example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_admin_keeps_their_own_role_and_access() {
        let me = Uuid::now_v7();
        let demote = Change {
            role: Some(Role::Member),
            ..Change::default()
        };
        assert!(check_admin_change(me, me, &demote).is_err());
        assert!(check_admin_change(me, Uuid::now_v7(), &demote).is_ok());
        let rename = Change {
            display_name: Some("Ada".into()),
            ..Change::default()
        };
        assert!(check_admin_change(me, me, &rename).is_ok());
    }
}
