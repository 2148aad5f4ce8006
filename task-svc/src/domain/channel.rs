//! A channel: tasks shared with everyone who joined with its code. Pure: no I/O.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use shared::identity::Identity;
use uuid::Uuid;

use crate::error::TaskError;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Channel {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    /// Shown to the owner only.
    pub join_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub members: i64,
}

/// A member of a channel, as its other members see them.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    /// Their name ("" until task-svc has heard of them).
    pub display_name: String,
    /// The channel's owner (who manages its members and code).
    pub owner: bool,
    pub joined_at: DateTime<Utc>,
}

/// Members a list shows at most: the owner, then the others by name.
pub const MAX_MEMBERS_LISTED: i64 = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinChannel {
    #[schema(min_length = 1, max_length = 64)]
    pub code: String,
}

/// 10 characters from an alphabet without look-alikes: about 50 bits.
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A channel's name: 1 to 100 printable characters, trimmed.
pub fn parse_name(raw: &str) -> Result<String, TaskError> {
    shared::text::one_line(raw, 100)
        .map(str::to_string)
        .ok_or_else(|| {
            TaskError::invalid("invalid_name", "name must be 1 to 100 printable characters")
        })
}

/// A join code as typed (trimmed, upper-cased); `None` when it cannot be one: codes are short
/// and alphanumeric ([`new_code`]), and anything else is not sent to the database (which
/// refuses NUL characters outright).
pub fn parse_code(raw: &str) -> Option<String> {
    let code = raw.trim().to_uppercase();
    let valid =
        !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then_some(code)
}

/// Only the channel's owner (or an admin) may do this; 403 otherwise.
pub fn owner_only(channel: &Channel, identity: &Identity) -> Result<(), TaskError> {
    if channel.owner_id == identity.user_id || identity.is_admin() {
        Ok(())
    } else {
        Err(TaskError::Forbidden(
            "only the channel's owner can do this".into(),
        ))
    }
}
