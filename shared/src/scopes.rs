//! What a personal access token may do: its scopes. A signed-in session may do everything its
//! role allows; a token only what its scopes name as well. The gateway checks a route's scope
//! before anything is forwarded; a service checks what a route alone cannot tell (creating a
//! task with a job needs `jobs:write`), with [`crate::identity::Identity::require_scope`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing a token may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Read tasks, channels, labels, people, workflows, files and a job's status and attempts.
    #[serde(rename = "tasks:read")]
    TasksRead,
    /// Create, change and delete tasks, comments, channels, labels and files.
    #[serde(rename = "tasks:write")]
    TasksWrite,
    /// Create jobs (tasks with a `job`, workflows), cancel and retry them.
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Read notifications, preferences and webhooks.
    #[serde(rename = "notifications:read")]
    NotificationsRead,
    /// Mark notifications read, change preferences and webhooks.
    #[serde(rename = "notifications:write")]
    NotificationsWrite,
    /// The admin routes (only an admin's token may have it).
    #[serde(rename = "admin")]
    Admin,
}

crate::text_enum!(Scope, "scope", {
    TasksRead = "tasks:read",
    TasksWrite = "tasks:write",
    JobsWrite = "jobs:write",
    NotificationsRead = "notifications:read",
    NotificationsWrite = "notifications:write",
    Admin = "admin",
});

impl Scope {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of scopes (small and `Copy`: it travels with every request of a token).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Self::default();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// The refusal of a request its token's scopes do not cover: 403 naming the scope (and, as RFC
/// 6750 describes, `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`).
pub fn insufficient(scope: Scope) -> crate::ApiError {
    crate::ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!("this token lacks the scope `{scope}`"),
    )
    .with_challenge(format!(
        "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
    ))
}

/// The refusal of a request only a signed-in session may make (managing tokens, a password).
pub fn session_only() -> crate::ApiError {
    crate::ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "session_required",
        "a personal access token cannot do this; sign in instead",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_keep_their_names_and_travel_as_a_list() {
        crate::text_enum::assert_serde_names(Scope::ALL, |s| s.as_str());
        let scopes: Scopes = [Scope::JobsWrite, Scope::TasksRead].into_iter().collect();
        assert!(scopes.contains(Scope::TasksRead) && !scopes.contains(Scope::Admin));
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(json, r#"["tasks:read","jobs:write"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
        assert!(serde_json::from_str::<Scopes>(r#"["tasks:all"]"#).is_err());
    }
}
