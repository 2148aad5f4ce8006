//! Labels: a tag with a colour, a person's own or a channel's. Their names follow the tags'
//! rule (lower-case, 1 to 40 printable characters), since tasks carry them as tags.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{domain::task::parse_tags, error::TaskError};

/// Most labels a person or a channel has.
pub const MAX_LABELS: i64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Label {
    pub id: Uuid,
    /// The tag it colours (lower-case).
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// The channel whose members share it; absent for a person's own.
    pub channel_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/labels`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLabel {
    #[schema(min_length = 1, max_length = 40)]
    pub name: String,
    /// `#rrggbb`.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: String,
    /// A channel of mine: the label is its members'. Absent: mine.
    pub channel_id: Option<Uuid>,
}

/// `PATCH /api/v1/labels/{id}`: its colour (a name is a tag on tasks, so it stays).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLabel {
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: String,
}

/// The label's name as a tag.
pub fn parse_name(raw: &str) -> Result<String, TaskError> {
    match parse_tags(&[raw.to_string()]) {
        Ok(mut tags) if tags.len() == 1 => Ok(tags.remove(0)),
        _ => Err(TaskError::invalid(
            "invalid_label",
            "a label's name is 1 to 40 printable characters",
        )),
    }
}

/// `#rrggbb`, lower-cased.
pub fn parse_color(raw: &str) -> Result<String, TaskError> {
    let hex = raw.strip_prefix('#').unwrap_or_default();
    match hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        true => Ok(raw.to_ascii_lowercase()),
        false => Err(TaskError::invalid(
            "invalid_color",
            "a colour is #rrggbb (like #0b5cad)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tags_and_colours_are_six_hex_digits() {
        assert_eq!(parse_name("  Roof ").unwrap(), "roof");
        assert!(parse_name("").is_err() && parse_name(&"x".repeat(41)).is_err());
        assert_eq!(parse_color("#0B5CAD").unwrap(), "#0b5cad");
        for bad in ["0b5cad", "#0b5ca", "#0b5cag", "red", "#0b5cad0"] {
            assert!(parse_color(bad).is_err(), "{bad}");
        }
    }
}
