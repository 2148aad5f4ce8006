//! Reporting to task-svc: finished reports (batched, published until the broker confirms them,
//! which is what a dispatch's ack waits for, then their dispatch claims settled in one pipeline)
//! and progress.

use std::sync::Arc;
use std::time::Duration;

use shared::{
    backoff::{self, Policy},
    broker::{OutgoingMessage, PublishError, Publisher},
    events::{CloudEvent, EventPayload, JobDispatch, JobFinished, JobProgress, JobsFinished},
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::claims::{Claims, Settle};
use shared::events::JobOutcome;

/// A finished report, its trace context, whether something waits on it at once (a workflow
/// step's: its next step), and who waits to hear whether the broker confirmed it.
pub type WaitingReport = (JobFinished, Option<String>, bool, oneshot::Sender<bool>);

/// Report publishes awaiting their confirm at once; while all are busy, reports queue up and
/// go out together.
const REPORTS_IN_FLIGHT: usize = 2;

/// A report as an AMQP message on the events exchange.
pub fn message<T: EventPayload>(exchange: &str, payload: T) -> OutgoingMessage {
    let event = CloudEvent::new(crate::SERVICE, payload);
    let mut message = OutgoingMessage::new(
        exchange,
        T::TYPE,
        serde_json::to_vec(&event).expect("events serialise"),
    );
    message.message_id = Some(event.id.to_string());
    message
}

/// Publishes finished reports until every sender is gone. Up to [`REPORTS_IN_FLIGHT`]
/// publishes await their confirm at once; the reports that queue up meanwhile go out as one
/// `job.finished.batch` (a lone report as a plain `job.finished`), so a busy worker sends one
/// message and waits for one confirm per batch instead of per job, and an idle one adds no delay.
/// Once a batch's confirm is in (and its runs told), its dispatch claims are marked done in one
/// pipeline (freed instead for a run handed back, or for a batch never confirmed).
pub async fn run_reporter(
    publisher: Publisher,
    exchange: String,
    mut queue: mpsc::UnboundedReceiver<WaitingReport>,
    claims: Claims,
) {
    let in_flight = Arc::new(Semaphore::new(REPORTS_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut batch = vec![first];
        while batch.len() < JobsFinished::MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut reports = Vec::with_capacity(batch.len());
        let mut traceparents = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        let mut settle = Vec::with_capacity(batch.len());
        let mut awaited = false;
        for (report, traceparent, report_awaited, waiter) in batch {
            awaited |= report_awaited;
            settle.push(Settle {
                dispatch_id: report.dispatch_id,
                run_id: report.run_id,
                done: (report.outcome != JobOutcome::Interrupted).then(|| report.outcome.as_str()),
            });
            reports.push(report);
            traceparents.push(traceparent);
            waiting.push(waiter);
        }
        let message = match <[JobFinished; 1]>::try_from(reports) {
            Ok([report]) => {
                let traceparent = traceparents.pop().flatten();
                shared::trace::scope(traceparent, async { message(&exchange, report) }).await
            }
            Err(reports) => message(
                &exchange,
                JobsFinished {
                    reports,
                    traceparents,
                },
            ),
        };
        let message = if awaited {
            message.with_header(
                shared::broker::HEADER_AWAITED,
                lapin::types::AMQPValue::ShortShortUInt(1),
            )
        } else {
            message
        };
        let publisher = publisher.clone();
        let claims = claims.clone();
        tokio::spawn(async move {
            let confirmed = publish_until_confirmed(&publisher, &message).await;
            if confirmed {
                // The fault suite's point: reported, neither acked nor marked.
                shared::crash::point("after_report");
            }
            for waiter in waiting {
                let _ = waiter.send(confirmed);
            }
            // The runs hold their claims until told; a copy delivered meanwhile waits for
            // this (or for the claim to lapse, should this worker die first).
            if !confirmed {
                settle.iter_mut().for_each(|run| run.done = None);
            }
            claims.settle(&settle).await;
            drop(permit);
        });
    }
}

/// How long a finished report is retried while the broker is away; the gap between tries grows
/// to [`REPORT_RETRY_GAP`], so a report goes out within about a second of the broker's return.
const REPORT_PATIENCE: Duration = Duration::from_secs(60);
const REPORT_RETRY_GAP: Duration = Duration::from_secs(1);

/// Publishes `message`, retrying while the broker is away (for [`REPORT_PATIENCE`]).
async fn publish_until_confirmed(publisher: &Publisher, message: &OutgoingMessage) -> bool {
    let policy = Policy::exponential(Duration::from_millis(100), REPORT_RETRY_GAP)
        .give_up_after(REPORT_PATIENCE);
    let yet = |err: &PublishError| {
        tracing::warn!(error = %err, "cannot report finished jobs yet");
        true
    };
    // No shutdown ends it: reports must go out while the worker stops, too.
    let never = CancellationToken::new();
    match backoff::retry(policy, &never, yet, || publisher.publish(message)).await {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!("finished jobs not reported; their dispatches run again");
            false
        }
    }
}

/// Publishes a handler's progress, at most twice a second (the latest report wins).
pub async fn forward_progress(
    publisher: Publisher,
    exchange: String,
    dispatch: JobDispatch,
    run_id: Uuid,
    mut reports: mpsc::UnboundedReceiver<(Option<f64>, Option<String>)>,
) {
    let mut seq = 0;
    while let Some(mut latest) = reports.recv().await {
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok(newer) = reports.try_recv() {
            latest = newer;
        }
        seq += 1;
        let progress = JobProgress {
            task_id: dispatch.task_id,
            dispatch_id: dispatch.dispatch_id,
            run_id,
            seq,
            percent: latest.0,
            message: latest.1,
        };
        if let Err(err) = publisher.publish(&message(&exchange, progress)).await {
            tracing::debug!(error = %err, "progress report dropped");
        }
    }
}
