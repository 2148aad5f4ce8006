//! A task: its fields, the rules its values follow (title, description, tags, assignee,
//! priority), what a caller may do with it, and how two versions differ. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use shared::identity::Identity;

use crate::{
    domain::{
        job::{JobSpec, JobView},
        status::Status,
    },
    error::TaskError,
};

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: String,
    #[schema(value_type = String)]
    pub status: Status,
    #[schema(value_type = String)]
    pub priority: Priority,
    /// Where the priority came from: `user`, `model` or `heuristic`.
    #[schema(value_type = String)]
    pub priority_source: PrioritySource,
    pub assignee_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    /// The task this one is a subtask of.
    pub parent_id: Option<Uuid>,
    /// An RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO`): completing the task creates the next one.
    pub recurrence: Option<String>,
    /// Increases with every change; the `ETag` is `"<version>"`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The description as HTML (its Markdown rendered and sanitised), on a task read alone.
    #[sqlx(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    /// An automated task's job; absent for a person's task.
    #[sqlx(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobView>,
}

impl Task {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// What a caller may do with a task.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub read: bool,
    /// Change every field and delete: its creator, its channel's owner, an admin.
    pub edit: bool,
}

impl Access {
    /// What `identity` may do with `task`, given their place in its channel (`Some((member,
    /// channel owner))`, `None` when it has none): its creator, its assignee, its channel's
    /// members and admins read it; its creator, its channel's owner and admins edit it.
    pub fn of(task: &Task, identity: &Identity, channel: Option<(bool, Uuid)>) -> Self {
        let mine = identity.is_admin() || task.owner_id == identity.user_id;
        let (member, channel_owner) = match channel {
            Some((member, owner)) => (member, owner == identity.user_id),
            None => (false, false),
        };
        Access {
            read: mine || member || task.assignee_id == Some(identity.user_id),
            edit: mine || channel_owner,
        }
    }
}

/// `If-Match` (its header value, when given) must name `task`'s current version, or `*`.
pub fn check_if_match(if_match: Option<&str>, task: &Task) -> Result<(), TaskError> {
    let Some(value) = if_match else {
        return Ok(());
    };
    let current = task.etag();
    match shared::http::etag_listed(value, &current) {
        true => Ok(()),
        false => Err(TaskError::Stale { current }),
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

shared::text_enum!(Priority, "priority", {
    Low = "low",
    Normal = "normal",
    High = "high",
    Urgent = "urgent",
});

impl Priority {
    /// Its rank, lowest first: the sort key of `-priority` lists and the order of classes.
    pub fn rank(self) -> u8 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    /// The AMQP priority of its job's dispatch (the job queues have `x-max-priority` 9).
    pub fn amqp(self) -> u8 {
        match self {
            Priority::Urgent => 9,
            Priority::High => 7,
            Priority::Normal => 4,
            Priority::Low => 1,
        }
    }
}

/// Where a task's priority came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrioritySource {
    /// A person set it.
    User,
    /// The deployment's trained model predicted it.
    Model,
    /// The documented heuristic decided it (no model yet, or none better than its baseline).
    Heuristic,
}

shared::text_enum!(PrioritySource, "priority source", {
    User = "user",
    Model = "model",
    Heuristic = "heuristic",
});

pub fn parse_title(raw: &str) -> Result<String, TaskError> {
    shared::text::one_line(raw, 200)
        .map(str::to_string)
        .ok_or_else(|| {
            TaskError::invalid(
                "invalid_title",
                "title must be 1 to 200 printable characters",
            )
        })
}

pub fn check_description(description: &str) -> Result<(), TaskError> {
    if description.chars().count() > 10_000 {
        return Err(TaskError::invalid(
            "invalid_description",
            "description must be at most 10000 characters",
        ));
    }
    Ok(())
}

/// At most 20 tags of 1 to 40 characters, trimmed, lowercased and deduplicated.
pub fn parse_tags(raw: &[String]) -> Result<Vec<String>, TaskError> {
    let mut tags: Vec<String> = raw.iter().map(|t| t.trim().to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    let bad = tags
        .iter()
        .any(|t| shared::text::one_line(t, 40) != Some(t.as_str()));
    if tags.len() > 20 || bad {
        return Err(TaskError::invalid(
            "invalid_tags",
            "at most 20 tags of 1 to 40 printable characters",
        ));
    }
    Ok(tags)
}

/// Whether a user whose `active` flag reads so (`None`: no such user) may be assigned.
pub fn assignable(active: Option<bool>) -> Result<(), TaskError> {
    match active {
        Some(true) => Ok(()),
        Some(false) => Err(TaskError::invalid(
            "inactive_assignee",
            "the assignee's account is deactivated",
        )),
        None => Err(TaskError::invalid(
            "unknown_assignee",
            "no user with this id",
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    pub priority: Option<Priority>,
    pub due_at: Option<DateTime<Utc>>,
    pub assignee_id: Option<Uuid>,
    /// Share the task with this channel's members (the caller must be one).
    pub channel_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Makes it a subtask of this task (one the caller may see).
    pub parent_id: Option<Uuid>,
    /// An RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO`): completing the task creates the next one.
    #[schema(max_length = 200)]
    pub recurrence: Option<String>,
    /// Makes it an automated task that a worker pool runs.
    pub job: Option<JobSpec>,
}

/// The `changes` entry of a status move.
pub fn status_change(before: &Task, after: &Task) -> Map<String, Value> {
    let mut changes = Map::new();
    changes.insert(
        "status".into(),
        json!({ "from": before.status, "to": after.status }),
    );
    changes
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
pub fn explicit<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A partial update; absent fields stay as they are, `null` clears `due_at`, `assignee_id`,
/// `channel_id` (the task becomes its owner's own), `parent_id` and `recurrence`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    /// Moves the task to this channel (the caller must be a member).
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<Uuid>)]
    pub channel_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub recurrence: Option<Option<String>>,
}

impl UpdateTask {
    pub fn only_status(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.due_at.is_none()
            && self.assignee_id.is_none()
            && self.tags.is_none()
            && self.channel_id.is_none()
            && self.parent_id.is_none()
            && self.recurrence.is_none()
    }
}

/// Field → `{from, to}` for every field that differs.
pub fn diff(before: &Task, after: &Task) -> Map<String, Value> {
    let (b, a) = (json!(before), json!(after));
    let mut changes = Map::new();
    for field in [
        "title",
        "description",
        "priority",
        "status",
        "due_at",
        "assignee_id",
        "tags",
        "channel_id",
        "parent_id",
        "recurrence",
    ] {
        if b[field] != a[field] {
            changes.insert(field.into(), json!({ "from": b[field], "to": a[field] }));
        }
    }
    changes
}

/// One recorded change.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub id: Uuid,
    /// Who changed it; the nil UUID for the system.
    pub actor_id: Uuid,
    /// Their name: "" for the system or someone task-svc has not heard of.
    pub actor_name: String,
    pub at: DateTime<Utc>,
    /// Field → `{from, to}`.
    #[schema(value_type = Object)]
    pub changes: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_and_their_sources_have_one_name_each() {
        shared::text_enum::assert_serde_names(Priority::ALL, |p| p.as_str());
        shared::text_enum::assert_serde_names(PrioritySource::ALL, |p| p.as_str());
        let ranks: Vec<u8> = Priority::ALL.iter().map(|p| p.rank()).collect();
        assert_eq!(ranks, [0, 1, 2, 3]);
    }

    #[test]
    fn tags_are_normalised_and_bounded() {
        let tags = parse_tags(&["  Ops ".into(), "ops".into(), "DB".into()]).unwrap();
        assert_eq!(tags, ["db", "ops"]);
        assert!(parse_tags(&["".into()]).is_err());
        assert!(parse_tags(&(0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()).is_err());
    }
}
