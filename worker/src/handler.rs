//! What a job handler is: a function of a [`JobContext`] that returns a JSON result or a
//! [`JobError`]. New kinds plug in by registering a handler under their name in a [`Registry`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Everything a handler is told about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub task_id: Uuid,
    pub kind: String,
    pub payload: Value,
    /// 1 for the first run, 2 for the first retry, … A run redelivered after its worker died
    /// keeps the number of the dispatch it belongs to.
    pub attempt: i32,
    pub max_attempts: i32,
    /// The same for every attempt of this task: deduplicate effects on it.
    pub idempotency_key: String,
    /// A workflow step's inputs: the `result` of each step it needs, by step id (`None` for a
    /// job on its own).
    pub inputs: Option<Value>,
    /// A map step's run: the element it runs for.
    pub item: Option<Value>,
    /// Fires when the handler must stop: the task was cancelled, the timeout passed, or the
    /// worker is shutting down. A handler that ignores it is abandoned after a short grace.
    pub cancel: CancellationToken,
    pub(crate) progress: mpsc::UnboundedSender<(Option<f64>, Option<String>)>,
}

impl JobContext {
    /// Reports progress (`percent` 0–100, a short message). Cheap; reports are coalesced so a
    /// chatty handler costs at most a few messages a second.
    pub fn progress(&self, percent: Option<f64>, message: Option<&str>) {
        let percent = percent.map(|p| p.clamp(0.0, 100.0));
        let message = message.map(|m| m.chars().take(500).collect());
        let _ = self.progress.send((percent, message));
    }

    /// The payload as a handler's input type; a payload that does not fit fails the job for
    /// good (retrying cannot fix it).
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| JobError::fatal(format!("invalid {} payload: {e}", self.kind)))
    }
}

/// Why a run failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    pub message: String,
    /// `false`: retrying cannot help (bad payload, refused address); the job dies now.
    pub retryable: bool,
}

impl JobError {
    /// A failure worth another attempt after the backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure no retry can fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

pub type JobResult = Result<Value, JobError>;

/// Runs jobs of one kind. Any `Fn(JobContext) -> impl Future<Output = JobResult>` is one.
pub trait JobHandler: Send + Sync + 'static {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, JobResult>;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, JobResult> {
        Box::pin(self(ctx))
    }
}

/// Kind → handler.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("Registry").field("kinds", &kinds).finish()
    }
}

impl Registry {
    /// Registers `handler` for `kind`, replacing any earlier one.
    pub fn register(&mut self, kind: &str, handler: impl JobHandler) -> &mut Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// The `kind` label of a job's metrics: its kind if this worker has a handler for it,
    /// `unknown` otherwise, so a made-up kind in a payload cannot add a time series.
    pub fn metric_label(&self, kind: &str) -> String {
        match self.handlers.contains_key(kind) {
            true => kind.to_string(),
            false => "unknown".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_kinds_become_metric_labels() {
        let mut registry = Registry::default();
        registry.register("noop", |_ctx: JobContext| async {
            Ok(serde_json::Value::Null)
        });
        assert_eq!(registry.metric_label("noop"), "noop");
        assert_eq!(registry.metric_label("made-up-kind-0001"), "unknown");
        assert_eq!(registry.metric_label(""), "unknown");
    }
}
