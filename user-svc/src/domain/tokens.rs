//! Personal access tokens as their owners see them, and the rules of making one: a name, one or
//! more scopes (`admin` only for an admin), a lifetime of 1 to 366 days, at most
//! [`MAX_LIVE_PER_USER`] live ones per user.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use shared::identity::Role;
use shared::scopes::{Scope, Scopes};
use uuid::Uuid;

use crate::error::UserError;

/// Live (neither revoked nor expired) tokens one user may have.
pub const MAX_LIVE_PER_USER: i64 = 50;

/// The longest lifetime, and the one a token gets when none is asked for.
pub const MAX_DAYS: u32 = 366;
pub const DEFAULT_DAYS: u32 = 30;

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for (1 to 100 printable characters), such as `ci deploys`.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// One or more; `admin` only for an admin.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// 1 to 366; 30 when absent.
    #[schema(minimum = 1, maximum = 366)]
    pub expires_in_days: Option<u32>,
}

/// A token checked against the rules, ready to be made.
pub struct Checked {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
}

/// Checks `new` for an owner of `role`.
pub fn check(new: NewToken, role: Role, now: DateTime<Utc>) -> Result<Checked, UserError> {
    let name = shared::text::one_line(&new.name, 100)
        .map(str::to_string)
        .ok_or_else(|| {
            UserError::invalid("invalid_name", "name must be 1 to 100 printable characters")
        })?;
    let scopes: Scopes = new.scopes.iter().copied().collect();
    if scopes.is_empty() {
        return Err(UserError::invalid(
            "invalid_scopes",
            "a token needs at least one scope",
        ));
    }
    if scopes.contains(Scope::Admin) && role != Role::Admin {
        return Err(UserError::invalid(
            "invalid_scopes",
            "only an admin's token may have the scope `admin`",
        ));
    }
    let days = new.expires_in_days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(UserError::invalid(
            "invalid_expiry",
            format!("expires_in_days must be 1 to {MAX_DAYS}"),
        ));
    }
    Ok(Checked {
        name,
        scopes: scopes.iter().collect(),
        expires_at: now + Duration::days(i64::from(days)),
    })
}

/// A token as its owner (or an admin) sees it: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// When the gateway last admitted a request with it (recorded at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

/// The answer to `POST /api/v1/tokens`: the token, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// `tmk_…`: keep it secret; it cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// The role a token of an owner of `role` acts with: an admin's token without the scope
/// `admin` acts as a member (quotas, visibility, commands), whatever the route.
pub fn acting_role(role: Role, scopes: Scopes) -> Role {
    match role {
        Role::Admin if !scopes.contains(Scope::Admin) => Role::Member,
        other => other,
    }
}

/// The scopes a token of an owner now of `role` has: `admin` only while the owner is an admin.
pub fn effective(scopes: &[Scope], role: Role) -> Scopes {
    scopes
        .iter()
        .copied()
        .filter(|s| *s != Scope::Admin || role == Role::Admin)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(scopes: &[Scope], days: Option<u32>) -> NewToken {
        NewToken {
            name: " ci ".into(),
            scopes: scopes.to_vec(),
            expires_in_days: days,
        }
    }

    #[test]
    fn a_token_needs_a_name_scopes_and_a_lifetime_within_bounds() {
        let now = Utc::now();
        let ok = check(
            new(&[Scope::TasksRead, Scope::TasksRead], None),
            Role::Member,
            now,
        );
        let ok = ok.unwrap();
        assert_eq!((ok.name.as_str(), ok.scopes.len()), ("ci", 1));
        assert_eq!(ok.expires_at, now + Duration::days(30));
        let code = |r: Result<Checked, UserError>| match r {
            Err(UserError::Invalid { code, .. }) => code,
            _ => "accepted",
        };
        assert_eq!(
            code(check(new(&[], None), Role::Member, now)),
            "invalid_scopes"
        );
        let admin = new(&[Scope::Admin], None);
        assert_eq!(code(check(admin, Role::Member, now)), "invalid_scopes");
        assert!(check(new(&[Scope::Admin], None), Role::Admin, now).is_ok());
        for days in [0, 367] {
            let far = new(&[Scope::TasksRead], Some(days));
            assert_eq!(code(check(far, Role::Member, now)), "invalid_expiry");
        }
        let mut unnamed = new(&[Scope::TasksRead], None);
        unnamed.name = "  ".into();
        assert_eq!(code(check(unnamed, Role::Member, now)), "invalid_name");
    }

    #[test]
    fn admin_is_dropped_once_its_owner_is_no_admin() {
        let scopes = [Scope::TasksRead, Scope::Admin];
        assert!(effective(&scopes, Role::Admin).contains(Scope::Admin));
        let member = effective(&scopes, Role::Member);
        assert!(!member.contains(Scope::Admin) && member.contains(Scope::TasksRead));
        assert_eq!(acting_role(Role::Admin, member), Role::Member);
        let admin = effective(&scopes, Role::Admin);
        assert_eq!(acting_role(Role::Admin, admin), Role::Admin);
        assert_eq!(acting_role(Role::Worker, member), Role::Worker);
    }
}
