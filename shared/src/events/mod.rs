//! The event contract: the CloudEvents 1.0 envelope and the typed payloads every service shares.
//!
//! Each payload type names its routing key (`TYPE`) and its schema version (`VERSION`, sent as the
//! `dataversion` extension attribute). A consumer that sees a version it does not know rejects
//! the message to the dead-letter queue instead of guessing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod envelope;
mod jobs;
mod media;
mod workflows;
pub use envelope::{CloudEvent, DecodeError, EventPayload};
pub use jobs::{
    JobCancel, JobDispatch, JobFinished, JobOutcome, JobProgress, JobStarted, JobsFinished,
};
pub use media::{MediaDeleted, MediaProcessed, MediaUploaded, Thumbnail};
pub use workflows::{
    WorkflowCancelled, WorkflowCompleted, WorkflowCreated, WorkflowFailed, WorkflowFields,
};

/// Several events in one message, for the platform's own consumers: each is applied as if it
/// had arrived alone (its own id, type and trace), and a consumer takes only the types its
/// queue wants ([`crate::consumer::QueueSpec::accepts`]). The batch is retried or
/// dead-lettered as one message; consumers deduplicate on each event's id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventsBatch {
    pub events: Vec<CloudEvent>,
}

impl EventPayload for EventsBatch {
    const TYPE: &'static str = "events.batch";
    fn subject(&self) -> String {
        format!("{} events", self.events.len())
    }
}

/// `datacontenttype` of every event and the AMQP content type of every message.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// Every event type Taskmesh publishes; `docs/asyncapi.yaml` describes each (a test checks).
pub const ALL_TYPES: &[&str] = &[
    UserCreated::TYPE,
    UserUpdated::TYPE,
    UserDeleted::TYPE,
    TaskCreated::TYPE,
    TaskUpdated::TYPE,
    TaskStatusChanged::TYPE,
    TaskCompleted::TYPE,
    TaskAssigned::TYPE,
    TaskDeleted::TYPE,
    TaskDueSoon::TYPE,
    TaskFailed::TYPE,
    TaskDead::TYPE,
    TaskCommented::TYPE,
    TaskMentioned::TYPE,
    ChannelJoined::TYPE,
    NotificationCreated::TYPE,
    MailDue::TYPE,
    VerificationMailDue::TYPE,
    SmsDue::TYPE,
    JobDispatch::TYPE,
    JobStarted::TYPE,
    JobProgress::TYPE,
    JobFinished::TYPE,
    JobsFinished::TYPE,
    JobCancel::TYPE,
    EventsBatch::TYPE,
    MediaUploaded::TYPE,
    MediaProcessed::TYPE,
    MediaDeleted::TYPE,
    WorkflowCreated::TYPE,
    WorkflowCompleted::TYPE,
    WorkflowFailed::TYPE,
    WorkflowCancelled::TYPE,
];

/// The task, workflow and channel events notify-svc turns into notifications (its queue takes
/// these and `user.*`, no others).
pub const NOTIFYING_TYPES: &[&str] = &[
    TaskAssigned::TYPE,
    TaskStatusChanged::TYPE,
    TaskCompleted::TYPE,
    TaskDueSoon::TYPE,
    TaskFailed::TYPE,
    TaskDead::TYPE,
    WorkflowFailed::TYPE,
    ChannelJoined::TYPE,
    TaskMentioned::TYPE,
];

/// Every event type the live stream (`GET /api/v1/events/stream`) shows; anything else on its
/// queue (a worker may publish what it likes on `job.*`) is skipped.
pub const STREAMED_TYPES: &[&str] = &[
    TaskCreated::TYPE,
    TaskUpdated::TYPE,
    TaskStatusChanged::TYPE,
    TaskCompleted::TYPE,
    TaskAssigned::TYPE,
    TaskDeleted::TYPE,
    TaskDueSoon::TYPE,
    TaskFailed::TYPE,
    TaskDead::TYPE,
    TaskCommented::TYPE,
    TaskMentioned::TYPE,
    JobStarted::TYPE,
    JobProgress::TYPE,
    JobFinished::TYPE,
    MediaUploaded::TYPE,
    MediaProcessed::TYPE,
    MediaDeleted::TYPE,
    NotificationCreated::TYPE,
    ChannelJoined::TYPE,
    WorkflowCreated::TYPE,
    WorkflowCompleted::TYPE,
    WorkflowFailed::TYPE,
    WorkflowCancelled::TYPE,
];

/// A user registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserCreated {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
}

impl EventPayload for UserCreated {
    const TYPE: &'static str = "user.created";
    fn subject(&self) -> String {
        self.user_id.to_string()
    }
}

/// A user's profile, role or state changed; `changed` names the fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserUpdated {
    pub user_id: Uuid,
    pub display_name: String,
    pub role: String,
    pub active: bool,
    /// Whether the address is verified; absent from events made before verification existed
    /// (a consumer then keeps what it knew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The new address, when it changed (`changed` holds `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub changed: Vec<String>,
}

impl EventPayload for UserUpdated {
    const TYPE: &'static str = "user.updated";
    fn subject(&self) -> String {
        self.user_id.to_string()
    }
}

/// A user was deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserDeleted {
    pub user_id: Uuid,
}

impl EventPayload for UserDeleted {
    const TYPE: &'static str = "user.deleted";
    fn subject(&self) -> String {
        self.user_id.to_string()
    }
}

/// A task was created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskCreated {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub status: String,
    pub priority: String,
    pub assignee_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    /// Set for an automated task: the kind of its job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_kind: Option<String>,
}

impl EventPayload for TaskCreated {
    const TYPE: &'static str = "task.created";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A task's fields changed; `changed` names them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskUpdated {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
    pub title: String,
    pub changed: Vec<String>,
    pub version: i32,
}

impl EventPayload for TaskUpdated {
    const TYPE: &'static str = "task.updated";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A task moved between states.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskStatusChanged {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
    pub title: String,
    pub from: String,
    pub to: String,
    /// The task's assignee after the change (absent in events from before it was added).
    #[serde(default)]
    pub assignee_id: Option<Uuid>,
    /// Who follows the task and hears of it ([`TaskCompleted::followers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<Vec<Uuid>>,
}

impl EventPayload for TaskStatusChanged {
    const TYPE: &'static str = "task.status_changed";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A task reached `done`, or an automated task `completed` (then `job_kind` is set and
/// `actor_id` is the nil UUID: the system).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskCompleted {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_kind: Option<String>,
    /// Who follows a person's task and hears of it: its owner and assignee, its commenters and
    /// who chose to follow it, less who unfollowed, among those who may see it. Absent for a
    /// job's task and in events from before followers (then its owner and assignee hear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followers: Option<Vec<Uuid>>,
}

impl EventPayload for TaskCompleted {
    const TYPE: &'static str = "task.completed";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A task was handed to someone: a person (`assignee_id`) or, for an automated task, a worker
/// pool (`pool`, with `assignee_id` null). Version 2 made `assignee_id` optional and added `pool`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskAssigned {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub previous_assignee_id: Option<Uuid>,
    pub title: String,
    /// The worker pool an automated task was queued on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

impl EventPayload for TaskAssigned {
    const TYPE: &'static str = "task.assigned";
    const VERSION: u32 = 2;
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A comment on a task was written, edited or deleted (`change`: `created`, `edited`,
/// `deleted`); shown live to the task's audience.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskCommented {
    pub task_id: Uuid,
    pub comment_id: Uuid,
    pub author_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub change: String,
}

impl EventPayload for TaskCommented {
    const TYPE: &'static str = "task.commented";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A comment named someone who can see its task (`@` and their name): one event per person
/// named, the first time a comment names them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskMentioned {
    pub task_id: Uuid,
    pub comment_id: Uuid,
    pub author_id: Uuid,
    pub mentioned_id: Uuid,
    pub title: String,
    /// The comment's first 200 characters.
    pub excerpt: String,
}

impl EventPayload for TaskMentioned {
    const TYPE: &'static str = "task.mentioned";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A task was deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskDeleted {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
    /// Everyone who could see the task when it went (owner, assignee, channel members): the
    /// live stream tells them, since nobody can look the task up any more. Absent in events
    /// from before it was added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<Uuid>,
}

impl EventPayload for TaskDeleted {
    const TYPE: &'static str = "task.deleted";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A task falls due within the configured lead time (published once, at that moment).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskDueSoon {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub title: String,
    pub due_at: DateTime<Utc>,
}

impl EventPayload for TaskDueSoon {
    const TYPE: &'static str = "task.due_soon";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// An automated task's attempt failed; `retry_at` is set when it will run again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskFailed {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub kind: String,
    pub pool: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub error: String,
    pub retry_at: Option<DateTime<Utc>>,
}

impl EventPayload for TaskFailed {
    const TYPE: &'static str = "task.failed";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// An automated task used up its attempts (or failed for good) and went to its pool's
/// dead-letter queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskDead {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub kind: String,
    pub pool: String,
    pub attempts: i32,
    pub error: String,
}

impl EventPayload for TaskDead {
    const TYPE: &'static str = "task.dead";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A user joined a channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelJoined {
    pub channel_id: Uuid,
    pub channel_name: String,
    pub owner_id: Uuid,
    pub user_id: Uuid,
}

impl EventPayload for ChannelJoined {
    const TYPE: &'static str = "channel.joined";
    fn subject(&self) -> String {
        self.channel_id.to_string()
    }
}

/// An in-app notification was written (a live view shows it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotificationCreated {
    pub notification_id: Uuid,
    pub user_id: Uuid,
    /// `task.assigned`, `task.due_soon`, …
    pub kind: String,
    pub title: String,
    pub link: Option<String>,
    pub actor_id: Option<Uuid>,
}

impl EventPayload for NotificationCreated {
    const TYPE: &'static str = "notification.created";
    fn subject(&self) -> String {
        self.notification_id.to_string()
    }
}

/// notify-svc's own command to itself: send the mail `message_id` (its mail queue).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MailDue {
    pub message_id: Uuid,
}

impl EventPayload for MailDue {
    const TYPE: &'static str = "notify.mail";
    fn subject(&self) -> String {
        self.message_id.to_string()
    }
}

/// user-svc's command to notify-svc: mail `email` the link that verifies it. Carries the
/// one-time token (user-svc keeps only its hash), so it goes only to notify-svc's queue, never
/// under `user.*` (other consumers, webhooks) nor to the live stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerificationMailDue {
    pub user_id: Uuid,
    pub email: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// What the link does (absent: verifies the address).
    #[serde(default, skip_serializing_if = "AccountMail::is_verification")]
    pub purpose: AccountMail,
}

/// What an account mail's link does.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountMail {
    /// Verifies the account's address (`/verify-email?token=`).
    #[default]
    Verification,
    /// Confirms a new address for the account (`/verify-email?token=`, sent to the new one).
    EmailChange,
    /// Sets a new password (`/reset-password?token=`).
    PasswordReset,
}

impl AccountMail {
    pub fn is_verification(&self) -> bool {
        *self == AccountMail::Verification
    }
}

impl EventPayload for VerificationMailDue {
    const TYPE: &'static str = "notify.verification_mail";
    fn subject(&self) -> String {
        self.user_id.to_string()
    }
}

/// notify-svc's own command to itself: send the text `message_id` (its SMS queue).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SmsDue {
    pub message_id: Uuid,
}

impl EventPayload for SmsDue {
    const TYPE: &'static str = "notify.sms";
    fn subject(&self) -> String {
        self.message_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UserCreated {
        UserCreated {
            user_id: Uuid::now_v7(),
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            role: "member".into(),
        }
    }

    #[test]
    fn envelope_is_cloudevents_structured_json() {
        let event = CloudEvent::new("user-svc", sample());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "user.created");
        assert_eq!(json["source"], "/taskmesh/user-svc");
        assert_eq!(json["dataversion"], 1);
        assert_eq!(json["subject"], event.data.user_id.to_string());
        assert_eq!(event.id.get_version_num(), 7);
    }

    #[test]
    fn decoding_round_trips_and_refuses_other_types_and_versions() {
        let event = CloudEvent::new("user-svc", sample())
            .into_untyped()
            .unwrap();
        assert_eq!(
            event.decode::<UserCreated>().unwrap().email,
            "ada@example.com"
        );
        assert!(matches!(
            event.decode::<TaskCreated>(),
            Err(DecodeError::WrongType { .. })
        ));
        let mut future = event.clone();
        future.dataversion = 2;
        assert!(matches!(
            future.decode::<UserCreated>(),
            Err(DecodeError::UnknownVersion { version: 2, .. })
        ));
    }
}
