//! Sessions and refresh tokens: what a presented refresh token means.
//!
//! Login opens a session (its id is the `sid` of every access token issued in it) and hands out
//! an opaque refresh token, stored only as its SHA-256. Each refresh spends the token and returns
//! a new one; presenting a spent token again means it leaked, so the whole session (the token
//! family) is revoked.

use chrono::{DateTime, Utc};

/// What the store holds about a presented refresh token and its session.
#[derive(Debug, Clone)]
pub struct Presented {
    pub used: bool,
    pub revoked: bool,
    pub expires_at: DateTime<Utc>,
    pub user_active: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Spend it and issue the next one.
    Spend,
    /// Unknown, expired, revoked, or the account is inactive.
    Invalid,
    /// Spent before: it leaked. Revoke the session (`revoke`: it is not revoked yet).
    Reused { revoke: bool },
}

/// The rule of refresh-token rotation.
pub fn judge(presented: Option<&Presented>, now: DateTime<Utc>) -> Verdict {
    let Some(p) = presented else {
        return Verdict::Invalid;
    };
    if p.used {
        return Verdict::Reused { revoke: !p.revoked };
    }
    if p.revoked || p.expires_at <= now || !p.user_active {
        return Verdict::Invalid;
    }
    Verdict::Spend
}

/// Which of a user's sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Ending {
    One(uuid::Uuid),
    /// Every live session except the one given (if any).
    AllBut(Option<uuid::Uuid>),
}

/// What login and refresh return.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_spent_token_presented_again_revokes_its_session_once() {
        let now = Utc::now();
        let fresh = Presented {
            used: false,
            revoked: false,
            expires_at: now + Duration::hours(1),
            user_active: true,
        };
        assert_eq!(judge(Some(&fresh), now), Verdict::Spend);
        assert_eq!(judge(None, now), Verdict::Invalid);
        let spent = Presented {
            used: true,
            ..fresh.clone()
        };
        assert_eq!(judge(Some(&spent), now), Verdict::Reused { revoke: true });
        let spent_and_revoked = Presented {
            revoked: true,
            ..spent
        };
        assert_eq!(
            judge(Some(&spent_and_revoked), now),
            Verdict::Reused { revoke: false }
        );
        for stale in [
            Presented {
                expires_at: now,
                ..fresh.clone()
            },
            Presented {
                user_active: false,
                ..fresh.clone()
            },
            Presented {
                revoked: true,
                ..fresh
            },
        ] {
            assert_eq!(judge(Some(&stale), now), Verdict::Invalid);
        }
    }
}
