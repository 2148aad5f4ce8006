//! An operator's job search: its filters as given and checked, what a row shows, counts by
//! state, and the bulk actions on a selection. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    domain::status::{parse_job_state, Status},
    error::TaskError,
};

/// One job as an operator looks for it.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobSummary {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    /// Its owner's display name (absent if the account is unknown to the task service).
    pub owner_name: Option<String>,
    pub title: String,
    #[schema(value_type = String)]
    pub status: Status,
    pub priority: String,
    pub kind: String,
    pub pool: String,
    pub payload: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub run_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// How long its latest run took (or has been running), in milliseconds; absent before a
    /// first run.
    pub duration_ms: Option<i64>,
}

/// A page of an operator's job search.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPage {
    pub items: Vec<JobSummary>,
    /// Newest first: pass as `before` for the next page; absent on the last one.
    pub next_before: Option<Uuid>,
    /// Oldest first (`sort=oldest`): pass as `after` for the next page; absent on the last one.
    pub next_after: Option<Uuid>,
}

/// The filters of an operator's job search.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs of this kind.
    #[param(max_length = 100)]
    pub kind: Option<String>,
    /// Only jobs in this state: pending, scheduled, queued, running, retrying, completed, dead or
    /// cancelled.
    pub state: Option<String>,
    /// Only jobs of this pool.
    #[param(max_length = 100)]
    pub pool: Option<String>,
    /// Only jobs this account created.
    pub owner: Option<Uuid>,
    /// Only jobs whose payload contains this JSON object (PostgreSQL's `@>`: `{"url":"https://a"}`
    /// matches every payload with that `url`, whatever else it holds). At most 1 KiB.
    #[param(max_length = 1024)]
    pub payload: Option<String>,
    /// Only jobs whose last error contains this text (letter case aside; at most 200 bytes).
    #[param(max_length = 200)]
    pub error: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this time (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// `newest` (the default) or `oldest` first.
    pub sort: Option<String>,
    /// Newest first: jobs created before this task id (the `next_before` of the previous page).
    pub before: Option<Uuid>,
    /// Oldest first: jobs created after this task id (the `next_after` of the previous page).
    pub after: Option<Uuid>,
    /// At most this many (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The filters of the dead list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    pub pool: Option<String>,
    /// Only jobs of this kind.
    #[param(max_length = 100)]
    pub kind: Option<String>,
    /// Only jobs whose last error contains this text (letter case aside; at most 200 bytes).
    #[param(max_length = 200)]
    pub error: Option<String>,
    /// At most this many, newest first (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// A job search's filters, checked: what the store selects by.
#[derive(Debug, Default, PartialEq)]
pub struct JobFilter {
    pub kind: Option<String>,
    pub state: Option<Status>,
    pub pool: Option<String>,
    pub owner: Option<Uuid>,
    pub payload: Option<Value>,
    /// A `LIKE` pattern: the text given, its `%`, `_` and `\` escaped, between `%`s.
    pub error_like: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub oldest_first: bool,
    /// The cursor: the last task id of the previous page.
    pub cursor: Option<Uuid>,
}

fn check_length(name: &str, value: &Option<String>, max: usize) -> Result<(), TaskError> {
    match value {
        Some(v) if v.len() > max => Err(TaskError::invalid(
            "invalid_filter",
            format!("{name} is longer than {max} bytes"),
        )),
        _ => Ok(()),
    }
}

fn invalid(message: &str) -> TaskError {
    TaskError::invalid("invalid_filter", message.to_string())
}

impl JobQuery {
    /// The filters checked: 422 `invalid_filter` naming the one that is not right.
    pub fn filter(&self) -> Result<JobFilter, TaskError> {
        check_length("kind", &self.kind, 100)?;
        check_length("pool", &self.pool, 100)?;
        check_length("payload", &self.payload, 1024)?;
        check_length("error", &self.error, 200)?;
        let payload =
            match &self.payload {
                None => None,
                Some(text) => match serde_json::from_str::<Value>(text) {
                    Ok(value @ Value::Object(_)) => Some(value),
                    _ => return Err(invalid(
                        "payload must be a JSON object, such as {\"url\":\"https://example.com\"}",
                    )),
                },
            };
        let oldest_first = match self.sort.as_deref() {
            None | Some("newest") => false,
            Some("oldest") => true,
            Some(_) => return Err(invalid("sort is newest or oldest")),
        };
        let cursor = match (oldest_first, self.before, self.after) {
            (false, cursor, None) | (true, None, cursor) => cursor,
            (false, _, Some(_)) => return Err(invalid("after goes with sort=oldest")),
            (true, Some(_), _) => return Err(invalid("before goes with sort=newest")),
        };
        if let (Some(from), Some(to)) = (self.created_after, self.created_before) {
            if from >= to {
                return Err(invalid("created_after must be before created_before"));
            }
        }
        let error_like = self.error.as_deref().and_then(containing);
        Ok(JobFilter {
            kind: self.kind.clone().filter(|k| !k.is_empty()),
            state: self.state.as_deref().map(parse_job_state).transpose()?,
            pool: self.pool.clone().filter(|p| !p.is_empty()),
            owner: self.owner,
            payload,
            error_like,
            created_after: self.created_after,
            created_before: self.created_before,
            oldest_first,
            cursor,
        })
    }
}

/// The `LIKE` pattern of a text containing `text` (its `%`, `_` and `\\` taken literally);
/// none for an empty text.
fn containing(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Some(format!("%{escaped}%"))
}

/// How many jobs a search's filters (its state aside) select in each state.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCounts {
    pub pending: i64,
    pub scheduled: i64,
    pub queued: i64,
    pub running: i64,
    pub retrying: i64,
    pub dead: i64,
    pub completed: i64,
    pub cancelled: i64,
}

impl StateCounts {
    /// From `(state, count)` rows; states that are not a job's are left out.
    pub fn from_rows(rows: Vec<(Status, i64)>) -> Self {
        let mut counts = StateCounts::default();
        for (state, count) in rows {
            let slot = match state {
                Status::Pending => &mut counts.pending,
                Status::Scheduled => &mut counts.scheduled,
                Status::Queued => &mut counts.queued,
                Status::Running => &mut counts.running,
                Status::Retrying => &mut counts.retrying,
                Status::Dead => &mut counts.dead,
                Status::Completed => &mut counts.completed,
                Status::Cancelled => &mut counts.cancelled,
                _ => continue,
            };
            *slot += count;
        }
        counts
    }
}

/// What a bulk action does to each job of its selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// A job waiting for its retry or its scheduled time runs now.
    RetryNow,
    /// A live job is cancelled.
    Cancel,
    /// A dead job is queued again with a fresh budget of attempts.
    Replay,
    /// A dead job is deleted, with its task.
    Delete,
}

/// A bulk action on jobs named by task id.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkAction,
    /// 1 to 1000 task ids.
    #[schema(min_items = 1, max_items = 1000)]
    pub task_ids: Vec<Uuid>,
}

/// What a bulk action did.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    /// Jobs it acted on.
    pub done: u64,
    /// Jobs it left as they were: not in a state the action applies to, or gone.
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_checked_and_its_error_text_matched_literally() {
        let query = JobQuery {
            error: Some("50%_off\\".into()),
            sort: Some("oldest".into()),
            after: Some(Uuid::nil()),
            state: Some("dead".into()),
            ..JobQuery::default()
        };
        let filter = query.filter().unwrap();
        assert_eq!(filter.error_like.as_deref(), Some("%50\\%\\_off\\\\%"));
        assert!(filter.oldest_first);
        assert_eq!(filter.cursor, Some(Uuid::nil()));
        assert_eq!(filter.state, Some(Status::Dead));
        let bad = |q: JobQuery| q.filter().unwrap_err().to_string();
        assert!(bad(JobQuery {
            sort: Some("size".into()),
            ..JobQuery::default()
        })
        .contains("sort"));
        assert!(bad(JobQuery {
            after: Some(Uuid::nil()),
            ..JobQuery::default()
        })
        .contains("after"));
        assert!(bad(JobQuery {
            payload: Some("[1]".into()),
            ..JobQuery::default()
        })
        .contains("object"));
        let now = Utc::now();
        let backwards = JobQuery {
            created_after: Some(now),
            created_before: Some(now),
            ..JobQuery::default()
        };
        assert!(bad(backwards).contains("created_after"));
        assert!(bad(JobQuery {
            state: Some("todo".into()),
            ..JobQuery::default()
        })
        .contains("todo"));
    }

    #[test]
    fn counts_take_job_states_only() {
        let counts = StateCounts::from_rows(vec![
            (Status::Dead, 3),
            (Status::Queued, 2),
            (Status::Todo, 9),
        ]);
        assert_eq!((counts.dead, counts.queued, counts.completed), (3, 2, 0));
    }
}
