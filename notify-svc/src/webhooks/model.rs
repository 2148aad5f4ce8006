//! The webhook values and their rules (no SQL, no HTTP): an endpoint as its owner sees it, a
//! delivery's state, and how a URL, event types and a description are accepted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::outbound::{Guard, Refusal};
use uuid::Uuid;

use crate::domain::Kind;

pub const MAX_URL_LEN: usize = 2000;
pub const MAX_EVENT_TYPES: usize = 20;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint as its owner sees it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// The kinds of notification delivered here, e.g. `task.assigned`.
    pub event_types: Vec<String>,
    /// `false` after a `410 Gone`, after failing for `webhooks.disable_after_secs`, or when
    /// its owner disabled it; PATCH `enabled: true` turns it back on.
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// When the current run of failures began; `null` while deliveries succeed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs, if it does.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt, or being attempted.
    Pending,
    /// An attempt was answered with a 2xx.
    Delivered,
    /// Every attempt of the schedule failed, or the endpoint answered `410 Gone`.
    Failed,
    /// Its endpoint was disabled before it was delivered.
    Cancelled,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }
}

impl TryFrom<String> for DeliveryState {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
            DeliveryState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
        .ok_or_else(|| format!("unknown delivery state {value:?}"))
    }
}

/// Why input was refused: a stable code and a human detail (a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub detail: String,
}

fn invalid(code: &'static str, detail: impl Into<String>) -> Invalid {
    Invalid {
        code,
        detail: detail.into(),
    }
}

/// An endpoint URL: at most 2000 characters, http or https, not a literal internal address
/// unless `guard` allows it. (Names are resolved and checked separately, when it is saved.)
pub fn parse_url(raw: &str, guard: &Guard) -> Result<url::Url, Invalid> {
    if raw.chars().count() > MAX_URL_LEN {
        return Err(invalid(
            "invalid_url",
            format!("url must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let url = url::Url::parse(raw.trim())
        .map_err(|e| invalid("invalid_url", format!("url is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("invalid_url", "url must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("invalid_url", "url must not carry credentials"));
    }
    match guard.check_form(&url) {
        Ok(()) => Ok(url),
        Err(Refusal::Forbidden(why)) => Err(invalid("forbidden_url", why)),
        Err(Refusal::Unresolved(why)) => Err(invalid("unresolvable_url", why)),
    }
}

/// Event types: 1 to 20 names of notification kinds, without repeats (order kept).
pub fn parse_event_types(raw: &[String]) -> Result<Vec<String>, Invalid> {
    if raw.is_empty() || raw.len() > MAX_EVENT_TYPES {
        return Err(invalid(
            "invalid_event_types",
            format!("event_types must list 1 to {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut types: Vec<String> = Vec::with_capacity(raw.len());
    for name in raw {
        let kind = Kind::parse_choosable(name).ok_or_else(|| {
            let known: Vec<&str> = Kind::choosable().map(|k| k.as_str()).collect();
            invalid(
                "unknown_event_type",
                format!("unknown event type {name:?}; known: {}", known.join(", ")),
            )
        })?;
        if !types.iter().any(|t| t == kind.as_str()) {
            types.push(kind.as_str().to_string());
        }
    }
    Ok(types)
}

/// A description: at most 500 characters, no control characters but newlines and tabs.
pub fn parse_description(raw: &str) -> Result<String, Invalid> {
    shared::text::lines(raw, MAX_DESCRIPTION_CHARS)
        .map(str::to_string)
        .ok_or_else(|| {
            invalid(
                "invalid_description",
                format!("description must be at most {MAX_DESCRIPTION_CHARS} printable characters"),
            )
        })
}

/// The URL as it may be shown in notifications and logs: without query or fragment, which
/// can carry tokens.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new("webhooks.allow", &[]).unwrap()
    }

    #[test]
    fn urls_must_be_http_and_not_literally_internal() {
        assert!(parse_url("https://example.com/hook", &guard()).is_ok());
        assert_eq!(
            parse_url("ftp://example.com/", &guard()).unwrap_err().code,
            "invalid_url"
        );
        assert_eq!(
            parse_url("not a url", &guard()).unwrap_err().code,
            "invalid_url"
        );
        assert_eq!(
            parse_url("http://127.0.0.1:9/x", &guard())
                .unwrap_err()
                .code,
            "forbidden_url"
        );
        let allowed = Guard::new("webhooks.allow", &["127.0.0.1".into()]).unwrap();
        assert!(parse_url("http://127.0.0.1:9/x", &allowed).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse_url(&long, &guard()).unwrap_err().code, "invalid_url");
    }

    #[test]
    fn event_types_are_known_kinds_without_repeats() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_event_types(&names(&[
                "task.assigned",
                "task.assigned",
                "task.completed"
            ])),
            Ok(names(&["task.assigned", "task.completed"]))
        );
        let unknown = parse_event_types(&names(&["task.assigned", "task.exploded"])).unwrap_err();
        assert_eq!(unknown.code, "unknown_event_type");
        assert!(unknown.detail.contains("task.exploded"));
        assert!(parse_event_types(&[]).is_err());
        assert!(parse_event_types(&vec!["task.assigned".to_string(); 21]).is_err());
    }

    #[test]
    fn descriptions_are_short_and_printable() {
        assert_eq!(parse_description(" mine "), Ok("mine".into()));
        assert!(parse_description(&"x".repeat(501)).is_err());
        assert!(parse_description("a\u{0}b").is_err());
    }

    #[test]
    fn urls_are_shown_without_their_query() {
        assert_eq!(
            display_url("https://h.example/p?token=x#f"),
            "https://h.example/p"
        );
    }
}
