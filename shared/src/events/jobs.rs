//! The job engine's events: dispatches to worker pools, and the workers' reports back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::{CloudEvent, DecodeError, EventPayload};

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
    /// A workflow step's: the workflow it belongs to (absent for a job on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<Uuid>,
    /// A workflow step's: its id in the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// A workflow step's: the `result` of each step it needs, by step id (a need that ended
    /// without success and lets it run anyway gives `{"error", "status"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
    /// A map step's run: the element of the array it runs for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
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
                    specversion: self.specversion.clone(),
                    source: self.source.clone(),
                    time: self.time,
                    datacontenttype: self.datacontenttype.clone(),
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
    /// The dispatch it stops; absent: every dispatch of the task. A later dispatch of the same
    /// task (a workflow retried after a cancel) runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_id: Option<Uuid>,
}

impl EventPayload for JobCancel {
    const TYPE: &'static str = "job.cancel";
    fn subject(&self) -> String {
        self.task_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
