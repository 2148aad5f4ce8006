//! A dispatch's spans while traces are exported: its processing (child of the context that
//! dispatched it), the run inside it; the report's send follows as the publisher's span.

use shared::broker::Broker;
use shared::events::{JobDispatch, JobOutcome};
use shared::trace::{span::messaging, KeyValue, Kind, Span};

/// The processing of `dispatch` from its pool's queue on `broker`.
pub fn processing(broker: &Broker, dispatch: &JobDispatch, parent: Option<&str>) -> Span {
    // Not even the span's name is made while nothing is exported (once per dispatch).
    if !shared::trace::export::enabled() {
        return Span::none();
    }
    let queue = broker.queue_name(&format!("jobs.{}", dispatch.pool));
    Span::start_from(
        crate::SERVICE,
        format!("process {queue}"),
        Kind::Consumer,
        parent,
        &[],
        || {
            let id = dispatch.dispatch_id.to_string();
            messaging("process", &queue, Some(&dispatch.pool), Some(&id))
        },
    )
}

/// The run of `dispatch`, inside its processing.
pub fn running(dispatch: &JobDispatch) -> Span {
    if !shared::trace::export::enabled() {
        return Span::none();
    }
    Span::child(
        format!("run {}", dispatch.kind),
        Kind::Internal,
        None,
        || {
            vec![
                KeyValue::new("taskmesh.job.kind", dispatch.kind.clone()),
                KeyValue::new("taskmesh.job.pool", dispatch.pool.clone()),
                KeyValue::new("taskmesh.task.id", dispatch.task_id.to_string()),
                KeyValue::new("taskmesh.job.attempt", i64::from(dispatch.attempt)),
            ]
        },
    )
}

/// Ends the run's span with its `outcome` (failed unless it succeeded).
pub fn ran(mut running: Span, outcome: JobOutcome) {
    if running.is_recording() {
        running.set(KeyValue::new("taskmesh.job.outcome", outcome.as_str()));
        if outcome != JobOutcome::Succeeded {
            running.error(outcome.as_str());
        }
    }
}
