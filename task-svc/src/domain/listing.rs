//! A task list's filters, orders and cursors. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    domain::task::{Priority, Task},
    error::TaskError,
};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskList {
    pub items: Vec<Task>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /api/v1/tasks`; all optional, combined with AND.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub priority: Option<Priority>,
    pub assignee_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    /// Tasks carrying this tag.
    pub tag: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    /// Words in a person's task's title or description (full-text, each word also as the start
    /// of a longer one, letter case aside; jobs are found in the job console). Text without a
    /// letter or digit is matched as it is, in any task.
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `-created_at` (newest first, the default), `created_at`, `due_at` (soonest first, none
    /// last) or `-priority` (most urgent first).
    pub sort: Option<String>,
    /// From the previous page's `next_cursor` (with the same `sort`).
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The plain first page: no filter, order, size or cursor given.
    pub fn is_plain(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.assignee_id.is_none()
            && self.owner_id.is_none()
            && self.channel_id.is_none()
            && self.tag.is_none()
            && self.due_before.is_none()
            && self.due_after.is_none()
            && self.q.is_none()
            && self.limit.is_none()
            && self.sort.is_none()
            && self.cursor.is_none()
    }
}

/// Most words a search uses.
pub const MAX_SEARCH_WORDS: usize = 8;

/// The `to_tsquery('simple', …)` text of search `q`: each of its first words (runs of letters
/// and digits, lower-cased) as a prefix, all required; `None` when it has no word.
pub fn search_words(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_SEARCH_WORDS)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

/// The orders a list can come in; each is a keyset (sort key, id), so pages stay exact while
/// tasks are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest first (the default).
    CreatedDesc,
    CreatedAsc,
    /// Soonest due first; tasks without a due date last.
    DueAsc,
    /// Most urgent first, then newest.
    PriorityDesc,
}

impl Sort {
    pub fn parse(raw: Option<&str>) -> Result<Self, TaskError> {
        match raw.unwrap_or("-created_at") {
            "-created_at" => Ok(Sort::CreatedDesc),
            "created_at" => Ok(Sort::CreatedAsc),
            "due_at" => Ok(Sort::DueAsc),
            "-priority" => Ok(Sort::PriorityDesc),
            _ => Err(TaskError::malformed(
                "invalid_sort",
                "sort is one of -created_at (default), created_at, due_at, -priority",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::CreatedDesc => "-created_at",
            Sort::CreatedAsc => "created_at",
            Sort::DueAsc => "due_at",
            Sort::PriorityDesc => "-priority",
        }
    }

    /// The sort key of `task` as the text the SQL key casts from.
    pub fn key_of(self, task: &Task) -> String {
        match self {
            Sort::CreatedDesc | Sort::CreatedAsc => task.created_at.to_rfc3339(),
            Sort::DueAsc => task
                .due_at
                .map_or_else(|| "infinity".to_string(), |d| d.to_rfc3339()),
            Sort::PriorityDesc => task.priority.rank().to_string(),
        }
    }
}

/// Keyset position: the sort, and the sort key and id of the previous page's last task.
pub fn decode_cursor(cursor: &str, sort: Sort) -> Result<(String, Uuid), TaskError> {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let invalid = || TaskError::malformed("invalid_cursor", "cursor is not one this API gave");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    let (name, key, id) = (parts.next(), parts.next(), parts.next());
    let (Some(name), Some(key), Some(id)) = (name, key, id) else {
        return Err(invalid());
    };
    if name != sort.name() {
        return Err(TaskError::malformed(
            "invalid_cursor",
            "this cursor belongs to another sort order",
        ));
    }
    // The key must parse as its type, so the SQL cast cannot fail.
    let valid = match sort {
        Sort::PriorityDesc => key.parse::<i32>().is_ok(),
        Sort::DueAsc if key == "infinity" => true,
        _ => DateTime::parse_from_rfc3339(key).is_ok(),
    };
    if !valid {
        return Err(invalid());
    }
    Ok((key.to_string(), Uuid::parse_str(id).map_err(|_| invalid())?))
}

pub fn encode_cursor(task: &Task, sort: Sort) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", sort.name(), sort.key_of(task), task.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_its_words_as_prefixes_and_nothing_else() {
        assert_eq!(
            search_words("Fix the roof-gutter!").as_deref(),
            Some("fix:* & the:* & roof:* & gutter:*")
        );
        assert_eq!(
            search_words("Ünïcode 42").as_deref(),
            Some("ünïcode:* & 42:*")
        );
        assert_eq!(
            search_words("a:* | !b & ('c')").as_deref(),
            Some("a:* & b:* & c:*")
        );
        assert_eq!(search_words("100% -- %"), Some("100:*".to_string()));
        assert_eq!(search_words(" %_ "), None);
        assert_eq!(
            search_words(&"w ".repeat(20)).unwrap().matches('&').count(),
            7
        );
    }
}
