//! The event contract: the CloudEvents 1.0 envelope and the typed payloads every service shares.
//!
//! Each payload type names its routing key (`TYPE`) and its schema version (`VERSION`, sent as the
//! `dataversion` extension attribute). A consumer that sees a version it does not know rejects
//! the message to the dead-letter queue instead of guessing.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

/// `datacontenttype` of every event and the AMQP content type of every message.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// A typed event body.
pub trait EventPayload: Serialize + DeserializeOwned + Send + Sync {
    /// The CloudEvents `type`, also the routing key on `<namespace>.events`.
    const TYPE: &'static str;
    /// Schema version of this payload; bump on a breaking change.
    const VERSION: u32 = 1;
    /// The CloudEvents `subject`: the id of the thing the event is about.
    fn subject(&self) -> String;
}

/// A CloudEvents 1.0 structured-mode event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudEvent<T = serde_json::Value> {
    pub specversion: String,
    /// UUIDv7: unique and time-ordered; consumers deduplicate on it.
    pub id: Uuid,
    /// The publishing service, e.g. `/taskmesh/task-svc`.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub dataversion: u32,
    /// W3C trace context of the request that caused the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: T,
}

impl<T: EventPayload> CloudEvent<T> {
    /// Wraps `data` in a new envelope from `service`.
    pub fn new(service: &str, data: T) -> Self {
        Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: format!("/taskmesh/{service}"),
            event_type: T::TYPE.into(),
            subject: Some(data.subject()),
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            dataversion: T::VERSION,
            traceparent: crate::trace::current(),
            data,
        }
    }

    /// The same event with an untyped body, as stored in the outbox.
    pub fn into_untyped(self) -> Result<CloudEvent, serde_json::Error> {
        Ok(CloudEvent {
            specversion: self.specversion,
            id: self.id,
            source: self.source,
            event_type: self.event_type,
            subject: self.subject,
            time: self.time,
            datacontenttype: self.datacontenttype,
            dataversion: self.dataversion,
            traceparent: self.traceparent,
            data: serde_json::to_value(self.data)?,
        })
    }
}

impl CloudEvent {
    /// Reads the body as `T`, refusing another type or an unknown version.
    pub fn decode<T: EventPayload>(&self) -> Result<T, DecodeError> {
        if self.event_type != T::TYPE {
            return Err(DecodeError::WrongType {
                expected: T::TYPE,
                found: self.event_type.clone(),
            });
        }
        if self.dataversion != T::VERSION {
            return Err(DecodeError::UnknownVersion {
                event_type: T::TYPE,
                version: self.dataversion,
            });
        }
        serde_json::from_value(self.data.clone()).map_err(DecodeError::Body)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected a {expected} event, found {found}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("{event_type} version {version} is not known to this consumer")]
    UnknownVersion {
        event_type: &'static str,
        version: u32,
    },
    #[error("event body does not match its type: {0}")]
    Body(serde_json::Error),
}

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
    ChannelJoined::TYPE,
    NotificationCreated::TYPE,
    MailDue::TYPE,
    SmsDue::TYPE,
    JobDispatch::TYPE,
    JobStarted::TYPE,
    JobProgress::TYPE,
    JobFinished::TYPE,
    JobsFinished::TYPE,
    JobCancel::TYPE,
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

/// A task was deleted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskDeleted {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
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

/// A job handed to a worker pool: published on `job.dispatch.<pool>` to the pool's queue
/// `<ns>.jobs.<pool>` with the task's priority as the AMQP priority. Workers in any language
/// consume it (see `docs/asyncapi.yaml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobDispatch {
    pub task_id: Uuid,
    /// This hand-over; a retry or replay is a new dispatch. Reports name it, so a late report
    /// of an earlier dispatch cannot change the current one.
    pub dispatch_id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub pool: String,
    /// 1 for the first run, 2 for the first retry, …
    pub attempt: i32,
    pub max_attempts: i32,
    pub timeout_ms: i64,
    /// The same for every attempt of this task: handlers deduplicate their effects on it.
    pub idempotency_key: String,
    pub priority: String,
}

impl EventPayload for JobDispatch {
    const TYPE: &'static str = "job.dispatch";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A worker started running a dispatch (worker → task-svc).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStarted {
    pub task_id: Uuid,
    pub dispatch_id: Uuid,
    /// One execution; a redelivery after a crash is a new run of the same dispatch.
    pub run_id: Uuid,
    pub worker_id: String,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
}

impl EventPayload for JobStarted {
    const TYPE: &'static str = "job.started";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// A running handler's progress (worker → task-svc); `seq` orders the reports of one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobProgress {
    pub task_id: Uuid,
    pub dispatch_id: Uuid,
    pub run_id: Uuid,
    pub seq: i64,
    pub percent: Option<f64>,
    pub message: Option<String>,
}

impl EventPayload for JobProgress {
    const TYPE: &'static str = "job.progress";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    Succeeded,
    Failed,
    TimedOut,
    /// Stopped because the task was cancelled.
    Cancelled,
    /// Handed back unfinished (the worker shut down); the dispatch runs again elsewhere.
    Interrupted,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::TimedOut => "timed_out",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Interrupted => "interrupted",
        }
    }
}

/// A run ended (worker → task-svc). The worker acks the dispatch only after this is confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobFinished {
    pub task_id: Uuid,
    pub dispatch_id: Uuid,
    pub run_id: Uuid,
    pub worker_id: String,
    pub attempt: i32,
    pub outcome: JobOutcome,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    /// `false`: retrying cannot help (bad payload, unknown kind); the job goes dead now.
    pub retryable: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

impl EventPayload for JobFinished {
    const TYPE: &'static str = "job.finished";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

/// Several runs ended (worker → task-svc): what a busy worker publishes instead of one
/// `job.finished` per run, each report applied as if it had come alone. One message, one
/// confirm: the worker acks all their dispatches once it is confirmed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobsFinished {
    /// 2 to [`JobsFinished::MAX`] reports.
    pub reports: Vec<JobFinished>,
    /// The trace context of each report (that of its dispatch), by position; absent or shorter:
    /// the envelope's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traceparents: Vec<Option<String>>,
}

impl JobsFinished {
    /// Most reports in one message.
    pub const MAX: usize = 256;

    /// The id report `index` of the batch `batch_id` is applied under: derived, so a
    /// redelivered batch is recognised report by report.
    pub fn report_id(batch_id: Uuid, index: usize) -> Uuid {
        Uuid::new_v5(&batch_id, index.to_string().as_bytes())
    }
}

impl CloudEvent {
    /// The single `job.finished` events a `job.finished.batch` carries, each under its derived
    /// id ([`JobsFinished::report_id`]) with the batch's envelope; any other event as it is.
    pub fn expand_reports(&self) -> Result<Vec<CloudEvent>, DecodeError> {
        if self.event_type != JobsFinished::TYPE {
            return Ok(vec![self.clone()]);
        }
        let batch: JobsFinished = self.decode()?;
        let traceparents = batch.traceparents;
        batch
            .reports
            .into_iter()
            .enumerate()
            .map(|(index, report)| {
                Ok(CloudEvent {
                    id: JobsFinished::report_id(self.id, index),
                    event_type: JobFinished::TYPE.into(),
                    subject: Some(report.subject()),
                    dataversion: JobFinished::VERSION,
                    traceparent: traceparents
                        .get(index)
                        .cloned()
                        .flatten()
                        .or_else(|| self.traceparent.clone()),
                    data: serde_json::to_value(report).map_err(DecodeError::Body)?,
                    ..self.clone()
                })
            })
            .collect()
    }
}

impl EventPayload for JobsFinished {
    const TYPE: &'static str = "job.finished.batch";
    fn subject(&self) -> String {
        self.reports
            .first()
            .map(|r| r.worker_id.clone())
            .unwrap_or_default()
    }
}

/// Stop a job (task-svc → every worker): a worker running it fires its cancellation token, a
/// worker that receives its dispatch later skips it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobCancel {
    pub task_id: Uuid,
}

impl EventPayload for JobCancel {
    const TYPE: &'static str = "job.cancel";
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

    #[test]
    fn a_report_batch_expands_into_reports_with_stable_distinct_ids() {
        let report = |n: u32| JobFinished {
            task_id: Uuid::now_v7(),
            dispatch_id: Uuid::now_v7(),
            run_id: Uuid::now_v7(),
            worker_id: format!("w{n}"),
            attempt: 1,
            outcome: JobOutcome::Succeeded,
            result: None,
            error: None,
            retryable: true,
            started_at: Utc::now(),
            ended_at: Utc::now(),
        };
        let reports = vec![report(0), report(1)];
        let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string();
        let batch = CloudEvent::new(
            "worker",
            JobsFinished {
                reports: reports.clone(),
                traceparents: vec![None, Some(traced.clone())],
            },
        )
        .into_untyped()
        .unwrap();
        let once = batch.expand_reports().unwrap();
        let again = batch.expand_reports().unwrap();
        assert_eq!(once.len(), 2);
        assert_ne!(once[0].id, once[1].id);
        assert_ne!(once[0].id, batch.id);
        assert_eq!(
            once.iter().map(|e| e.id).collect::<Vec<_>>(),
            again.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert_eq!(once[1].decode::<JobFinished>().unwrap(), reports[1]);
        assert_eq!(once[1].traceparent.as_deref(), Some(traced.as_str()));
        assert_eq!(
            once[0].traceparent, batch.traceparent,
            "the envelope's otherwise"
        );
        let single = CloudEvent::new("worker", report(2)).into_untyped().unwrap();
        assert_eq!(single.expand_reports().unwrap()[0].id, single.id);
    }
}
