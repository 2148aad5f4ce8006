//! Comments on tasks: their text's limits, its Markdown rendered to HTML that is safe to show
//! (no script, style, event handler or `javascript:` link survives), and the people it names
//! (`@` and a name of someone who can see the task).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::TaskError;

/// Longest comment, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;
/// Most comments a task's list answers (the oldest first).
pub const MAX_LISTED: i64 = 500;
/// The excerpt of a comment a mention carries, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// A comment as the API answers it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub task_id: Uuid,
    pub author_id: Uuid,
    /// "" for someone task-svc has not heard of.
    pub author_name: String,
    /// Markdown, as written.
    pub body: String,
    /// `body` rendered to HTML, sanitised: safe to insert into a page.
    #[sqlx(skip)]
    pub body_html: String,
    pub created_at: DateTime<Utc>,
    /// When last edited; absent if never.
    pub edited_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/tasks/{id}/comments` and `PATCH .../comments/{comment_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteComment {
    /// Markdown, 1 to 10,000 characters; `@Name` tells a person who can see the task.
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
}

/// The comment's text, trimmed: 1 to 10,000 characters, no control characters but newlines and
/// tabs.
pub fn parse_body(raw: &str) -> Result<String, TaskError> {
    match shared::text::lines(raw, MAX_BODY_CHARS) {
        Some(body) if !body.is_empty() => Ok(body.to_string()),
        _ => Err(TaskError::invalid(
            "invalid_comment",
            "body must be 1 to 10,000 characters (newlines and tabs allowed, no other control characters)",
        )),
    }
}

/// `markdown` as HTML safe to show: CommonMark with tables and strikethrough, then sanitised
/// (ammonia's defaults: no scripts, styles, event handlers or `javascript:` URLs; links get
/// `rel="noopener noreferrer"`).
pub fn render(markdown: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut unsafe_html = String::new();
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::clean(&unsafe_html)
}

/// The people `body` names: each candidate (someone who can see the task, with their name)
/// whose name follows an `@`, letter case aside, and ends there (at the text's end, a space or
/// a punctuation mark). Where names overlap ("Ada" and "Ada Lovelace"), the longest wins. Each
/// person once, in the order first named.
pub fn mentions(body: &str, candidates: &[(Uuid, String)]) -> Vec<Uuid> {
    let lower = body.to_lowercase();
    let mut found = Vec::new();
    for (at, _) in lower.match_indices('@') {
        // An address (`ada@example.com`) names nobody: the `@` must start a word.
        let before = lower[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        let rest = &lower[at + 1..];
        let best = candidates
            .iter()
            .filter(|(_, name)| !name.trim().is_empty())
            .filter(|(_, name)| {
                let name = name.to_lowercase();
                rest.starts_with(&name)
                    && rest[name.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_alphanumeric())
            })
            .max_by_key(|(_, name)| name.len());
        if let Some((id, _)) = best {
            if !found.contains(id) {
                found.push(*id);
            }
        }
    }
    found
}

/// The first [`EXCERPT_CHARS`] characters of `body`, with "…" when cut.
pub fn excerpt(body: &str) -> String {
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_nothing_active_survives() {
        assert_eq!(
            render("**bold** and `code`"),
            "<p><strong>bold</strong> and <code>code</code></p>\n"
        );
        let html = render("<script>alert(1)</script><img src=x onerror=alert(2)>");
        for bad in ["<script", "onerror"] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        let link = render("[x](javascript:alert(3)) <a href=\"javascript:alert(4)\">y</a>");
        assert!(!link.contains("href=\"javascript"), "{link}");
        assert!(render("[site](https://example.com)").contains("rel=\"noopener noreferrer\""));
    }

    #[test]
    fn mentions_name_candidates_after_an_at_the_longest_name_winning() {
        let (ada, lovelace, bob) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let people = [
            (ada, "Ada".to_string()),
            (lovelace, "Ada Lovelace".to_string()),
            (bob, "Bob Stone".to_string()),
        ];
        assert_eq!(
            mentions("@ada lovelace, see @Bob Stone.", &people),
            [lovelace, bob]
        );
        assert_eq!(mentions("@Ada: and @Ada again", &people), [ada]);
        assert_eq!(
            mentions("mail bob@Bob Stone or @Bobby", &people),
            Vec::<Uuid>::new()
        );
        assert_eq!(mentions("(@Bob Stone)", &people), [bob]);
        assert_eq!(mentions("@Adam", &people), Vec::<Uuid>::new());
    }

    #[test]
    fn bodies_are_bounded_and_excerpts_cut_between_characters() {
        assert!(parse_body("  ").is_err());
        assert!(parse_body(&"é".repeat(10_001)).is_err());
        assert_eq!(parse_body(" a\nb ").unwrap(), "a\nb");
        assert!(parse_body("a\u{7}").is_err());
        assert_eq!(excerpt(&"é".repeat(201)), format!("{}…", "é".repeat(200)));
        assert_eq!(excerpt("short"), "short");
    }
}
