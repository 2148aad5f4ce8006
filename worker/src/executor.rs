//! Running dispatches: consume a pool's queue, run each job under the concurrency limit and its
//! timeout, report start, progress and outcome to task-svc, then ack.
//!
//! The ack comes only after the `job.finished` report is confirmed by the broker ([`crate::reports`]), so a worker
//! that dies at any point loses nothing: its unacked dispatches go back to the queue and
//! another worker runs them; a copy of one that finished settles without running
//! ([`crate::claims`]), and handlers get an idempotency key besides. At shutdown the
//! worker stops taking dispatches, lets running jobs finish within the grace period, then stops
//! the rest and hands them back (`interrupted`, requeued).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use redis::aio::ConnectionManager;
use serde_json::Value;
use shared::{
    broker::{keep_consuming, Broker, OutgoingMessage, Publisher},
    config::WorkersConfig,
    events::{
        CloudEvent, EventPayload, JobCancel, JobDispatch, JobFinished, JobOutcome, JobStarted,
    },
    topology::PoolTopology,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::claims::{Claim, Claims};
use crate::handler::{JobContext, JobError, Registry};
use crate::holding::{self, Awaiting, Consumer, Waiting, Window};
use crate::reports::{forward_progress, message, run_reporter, WaitingReport};

/// Why a running job's token fired.
const STOP_NONE: u8 = 0;
const STOP_CANCELLED: u8 = 1;
const STOP_HANDED_BACK: u8 = 2;
const STOP_TIMED_OUT: u8 = 3;

/// How long a handler may take to return once told to stop before it is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Counters the heartbeat reports.
#[derive(Debug, Default)]
pub struct Stats {
    pub in_flight: AtomicUsize,
    pub processed: AtomicU64,
    pub failed: AtomicU64,
}

struct Running {
    token: CancellationToken,
    reason: Arc<AtomicU8>,
}

/// Everything the pool consumers of one worker process share.
pub struct Executor {
    pub id: String,
    pub config: WorkersConfig,
    pub stats: Stats,
    registry: Registry,
    broker: Broker,
    publisher: Publisher,
    /// One run per dispatch across redeliveries ([`crate::claims`]).
    claims: Claims,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<Uuid, Running>>,
    /// Cancels that arrived before their dispatch (kept an hour).
    cancelled: Mutex<HashMap<Uuid, (Instant, Option<Uuid>)>>,
    /// Finished reports on their way to the broker ([`run_reporter`]).
    reports: mpsc::UnboundedSender<WaitingReport>,
}

impl Executor {
    pub fn new(
        id: String,
        config: WorkersConfig,
        registry: Registry,
        broker: Broker,
        redis: ConnectionManager,
        redis_prefix: String,
    ) -> Self {
        let (reports, queue) = mpsc::unbounded_channel();
        let claims = Claims::new(redis.clone(), redis_prefix.clone());
        tokio::spawn(run_reporter(
            Publisher::new(broker.clone()),
            broker.events_exchange(),
            queue,
            claims.clone(),
        ));
        Self {
            id,
            reports,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            config,
            stats: Stats::default(),
            registry,
            publisher: Publisher::new(broker.clone()),
            broker,
            claims,
            running: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(HashMap::new()),
        }
    }

    /// Consumes `pool` until `stop_taking` fires, reconnecting when the broker goes away; then
    /// waits for its running jobs (which `hand_back` stops).
    pub async fn consume_pool(
        self: Arc<Self>,
        pool: String,
        stop_taking: CancellationToken,
        hand_back: CancellationToken,
    ) {
        keep_consuming(&self.broker, &format!("pool {pool}"), &stop_taking, || {
            self.clone().consume_once(&pool, &stop_taking, &hand_back)
        })
        .await;
        tracing::info!(%pool, "pool consumer stopped");
    }

    async fn consume_once(
        self: Arc<Self>,
        pool: &str,
        stop_taking: &CancellationToken,
        hand_back: &CancellationToken,
    ) -> anyhow::Result<()> {
        let topology = PoolTopology::new(&self.broker, pool);
        let channel = self.broker.channel().await?;
        topology.declare(&self.broker, &channel).await?;
        // The prefetch bounds what this worker holds: held dispatches cannot be overtaken by a
        // more urgent one, so it stays near the concurrency but for finished ones (`holding`).
        let mut window = Window::new(self.config.concurrency, self.config.prefetch);
        // This pool's finished dispatches awaiting their confirm: what its window makes room for.
        let awaiting = Arc::new(Awaiting::default());
        let mut consumer = Consumer::new(&channel, &topology.queue, format!("{}-{pool}", self.id));
        let mut deliveries = consumer.start(window.current()).await?;
        tracing::info!(queue = %topology.queue, prefetch = window.current(), concurrency = self.config.concurrency, "consuming jobs");
        let mut in_flight = JoinSet::new();
        // Held dispatches wait here for a slot; the most urgent starts first, so holding more
        // than the concurrency does not let a backlog of low jobs run before an urgent one.
        let mut waiting = std::collections::BinaryHeap::new();
        let mut seq = 0u64;
        let mut tick = tokio::time::interval(holding::TICK);
        let result = loop {
            tokio::select! {
                _ = stop_taking.cancelled() => break Ok(()),
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                permit = self.slots.clone().acquire_owned(), if !waiting.is_empty() => {
                    let permit = permit.expect("the semaphore is never closed");
                    let Waiting { delivery, .. } = waiting.pop().expect("not empty");
                    let executor = self.clone();
                    let back = hand_back.clone();
                    let awaiting = awaiting.clone();
                    in_flight.spawn(async move { executor.handle(delivery, permit, back, &awaiting).await });
                }
                _ = tick.tick(), if window.adapts() => {
                    let Some(prefetch) = window.next(awaiting.take_peak()) else { continue };
                    match consumer.restart(&mut deliveries, prefetch).await {
                        Ok(held) => {
                            for delivery in held {
                                seq += 1;
                                waiting.push(Waiting::new(delivery, seq));
                            }
                            tracing::debug!(queue = %topology.queue, prefetch, "prefetch changed");
                        }
                        Err(err) => break Err(err.into()),
                    }
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        seq += 1;
                        waiting.push(Waiting::new(delivery, seq));
                    }
                    Some(Err(err)) => break Err(err.into()),
                    None => break Err(anyhow::anyhow!("the broker closed the consumer")),
                }
            }
        };
        // Dispatches that never started go back to the queue for another worker.
        for Waiting { delivery, .. } in waiting {
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
        if result.is_err() {
            // The channel is gone, and with it every delivery it held: the broker has put them
            // back already. Running jobs finish and report in the background (a copy of one
            // waits on its claim, then settles without running) while the pool consumes again
            // at once instead of after its slowest job.
            in_flight.detach_all();
            return result;
        }
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
        while in_flight.join_next().await.is_some() {}
        let _ = channel.close(200, "worker stopped").await;
        result
    }

    /// Runs one dispatch and settles it.
    async fn handle(
        self: Arc<Self>,
        delivery: Delivery,
        permit: tokio::sync::OwnedSemaphorePermit,
        hand_back: CancellationToken,
        awaiting: &Awaiting,
    ) {
        let event = serde_json::from_slice::<CloudEvent>(&delivery.data);
        // Reports carry the dispatch's trace context: one trace from the creating request to
        // the completion.
        let traceparent = event.as_ref().ok().and_then(|e| e.traceparent.clone());
        let dispatch = match event
            .map_err(|e| e.to_string())
            .and_then(|event| event.decode::<JobDispatch>().map_err(|e| e.to_string()))
        {
            Ok(dispatch) => dispatch,
            Err(err) => {
                tracing::error!(error = %err, "not a job dispatch this worker understands; dropped");
                metrics::counter!("taskmesh_worker_malformed_total").increment(1);
                let _ = delivery.acker.nack(BasicNackOptions::default()).await;
                return;
            }
        };
        let run_id = Uuid::now_v7();
        let claim = self
            .claims
            .acquire(
                dispatch.dispatch_id,
                run_id,
                dispatch.task_id,
                &hand_back,
                // A live holder is done by then: its run's timeout, the stop's grace, and a
                // claim's life after its worker stops extending it.
                Instant::now()
                    + Duration::from_millis(dispatch.timeout_ms.max(1) as u64)
                    + STOP_GRACE
                    + crate::claims::CLAIM_TTL,
            )
            .await;
        let cancel_marked = match claim {
            Claim::Run { cancelled } => cancelled,
            Claim::Done => {
                // A copy of a dispatch another run finished (its channel died before it could
                // settle, so the broker handed it out again): settle it, run nothing.
                tracing::info!(task_id = %dispatch.task_id, dispatch_id = %dispatch.dispatch_id, "dispatch already finished; settled without running");
                metrics::counter!("taskmesh_worker_redelivered_finished_total").increment(1);
                drop(permit);
                if let Err(err) = delivery.acker.ack(BasicAckOptions::default()).await {
                    tracing::debug!(error = %err, "could not settle a finished dispatch's copy");
                }
                return;
            }
            Claim::Abandoned => {
                // Stopping while another run held it: back to the queue, for whoever is left.
                drop(permit);
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                let _ = delivery.acker.nack(requeue).await;
                return;
            }
        };
        // Extended until the run is settled; the reporter marks it done (or frees it) once the
        // report's confirm is in, so a copy of this dispatch never runs after that.
        let held = self.claims.hold(dispatch.dispatch_id, run_id);
        let span = tracing::info_span!("job", task_id = %dispatch.task_id, kind = %dispatch.kind, attempt = dispatch.attempt);
        // While traces are exported: the dispatch's processing (child of the context that
        // dispatched it), the run inside it, and the report (the broker's send) after it.
        let processing = crate::spans::processing(&self.broker, &dispatch, traceparent.as_deref());
        let scoped = shared::trace::scope(
            traceparent,
            processing.enter(async {
                let running = crate::spans::running(&dispatch);
                let run = running.enter(self.execute(&dispatch, run_id, &hand_back, cancel_marked));
                let finished = tracing::Instrument::instrument(run, span).await;
                crate::spans::ran(running, finished.outcome);
                drop(permit);
                let requeue = finished.outcome == JobOutcome::Interrupted;
                let awaiting = awaiting.enter();
                // Ack only once task-svc's report is safe with the broker.
                let awaited = dispatch.workflow_id.is_some();
                let reported = self.report_until_confirmed(finished, awaited).await;
                (requeue, reported, awaiting)
            }),
        );
        let (requeue, reported, awaiting) = scoped.await;
        drop(processing);
        drop(held);
        let settled = if reported && !requeue {
            delivery.acker.ack(BasicAckOptions::default()).await
        } else {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
        };
        if let Err(err) = settled {
            // Its channel is gone (the broker has already put it back): the copy finds the
            // claim and settles without running.
            tracing::info!(task_id = %dispatch.task_id, error = %err, "could not settle a dispatch on its closed channel; the broker redelivers it");
        }
        drop(awaiting);
    }

    /// Whether this task was cancelled (its cancel mark, which the claim read from Redis, or
    /// a cancel broadcast seen here since). Registers the job as running otherwise, so a later
    /// cancel broadcast reaches it.
    fn start_or_skip(
        &self,
        task_id: Uuid,
        dispatch_id: Uuid,
        cancel_marked: bool,
    ) -> Option<Running> {
        let cancelled = self.cancelled.lock().unwrap();
        let broadcast = cancelled
            .get(&task_id)
            .is_some_and(|(_, of)| of.is_none_or(|d| d == dispatch_id));
        if cancel_marked || broadcast {
            return None;
        }
        let token = CancellationToken::new();
        let reason = Arc::new(AtomicU8::new(STOP_NONE));
        self.running.lock().unwrap().insert(
            task_id,
            Running {
                token: token.clone(),
                reason: reason.clone(),
            },
        );
        Some(Running { token, reason })
    }

    /// Handles a `job.cancel` broadcast (of `dispatch_id` only, when it names one).
    pub fn cancel(&self, task_id: Uuid, dispatch_id: Option<Uuid>) {
        let mut cancelled = self.cancelled.lock().unwrap();
        if let Some(running) = self.running.lock().unwrap().get(&task_id) {
            running.reason.store(STOP_CANCELLED, Ordering::SeqCst);
            running.token.cancel();
            tracing::info!(%task_id, "cancelling a running job");
            return;
        }
        let hour = Duration::from_secs(3600);
        cancelled.retain(|_, (at, _)| at.elapsed() < hour);
        cancelled.insert(task_id, (Instant::now(), dispatch_id));
    }

    async fn execute(
        &self,
        dispatch: &JobDispatch,
        run_id: Uuid,
        hand_back: &CancellationToken,
        cancel_marked: bool,
    ) -> JobFinished {
        let started_at = Utc::now();
        let finished =
            |outcome: JobOutcome, result: Option<Value>, error: Option<JobError>| JobFinished {
                task_id: dispatch.task_id,
                dispatch_id: dispatch.dispatch_id,
                run_id,
                worker_id: self.id.clone(),
                attempt: dispatch.attempt,
                outcome,
                result,
                retryable: error.as_ref().is_none_or(|e| e.retryable),
                error: error.map(|e| e.message),
                started_at,
                ended_at: Utc::now(),
            };
        let Some(running) =
            self.start_or_skip(dispatch.task_id, dispatch.dispatch_id, cancel_marked)
        else {
            tracing::info!("skipping a cancelled job");
            return finished(JobOutcome::Cancelled, None, None);
        };
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = JobStarted {
            task_id: dispatch.task_id,
            dispatch_id: dispatch.dispatch_id,
            run_id,
            worker_id: self.id.clone(),
            attempt: dispatch.attempt,
            started_at,
        };
        let publisher = self.publisher.clone();
        let started_message = self.message(started);
        // A job that finishes sooner than this is reported once, finished (with its start time):
        // one report instead of two for the quick jobs that make up most of a busy queue.
        let delay = Duration::from_millis(self.config.report_started_after_ms);
        let started_report = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            publisher.publish(&started_message).await
        });
        let (progress_tx, progress_rx) = mpsc::unbounded_channel();
        let progress = tokio::spawn(shared::trace::scope(
            shared::trace::current(),
            forward_progress(
                self.publisher.clone(),
                self.broker.events_exchange(),
                dispatch.clone(),
                run_id,
                progress_rx,
            ),
        ));
        let ctx = JobContext {
            task_id: dispatch.task_id,
            kind: dispatch.kind.clone(),
            payload: dispatch.payload.clone(),
            attempt: dispatch.attempt,
            max_attempts: dispatch.max_attempts,
            idempotency_key: dispatch.idempotency_key.clone(),
            inputs: dispatch.inputs.clone(),
            item: dispatch.item.clone(),
            cancel: running.token.clone(),
            progress: progress_tx,
        };
        let timeout = Duration::from_millis(dispatch.timeout_ms.max(1) as u64);
        let outcome = match self.registry.get(&dispatch.kind) {
            None => Err(JobError::fatal(format!(
                "no handler for kind {:?} on worker {} (it runs {})",
                dispatch.kind,
                self.id,
                self.registry.kinds().join(", ")
            ))),
            Some(handler) => {
                let mut run = handler.run(ctx);
                let stop = tokio::select! {
                    result = &mut run => Ok(result),
                    _ = tokio::time::sleep(timeout) => Err(STOP_TIMED_OUT),
                    _ = running.token.cancelled() => Err(running.reason.load(Ordering::SeqCst)),
                    _ = hand_back.cancelled() => Err(STOP_HANDED_BACK),
                };
                match stop {
                    Ok(result) => result,
                    Err(reason) => {
                        running.reason.store(reason, Ordering::SeqCst);
                        running.token.cancel();
                        // A handler that finishes within the grace did its work: keep it.
                        match tokio::time::timeout(STOP_GRACE, &mut run).await {
                            Ok(Ok(value)) => Ok(value),
                            _ => Err(JobError::retry(match reason {
                                STOP_TIMED_OUT => format!("timed out after {timeout:?}"),
                                STOP_CANCELLED => "cancelled".into(),
                                _ => "handed back: the worker is shutting down".into(),
                            })),
                        }
                    }
                }
            }
        };
        self.running.lock().unwrap().remove(&dispatch.task_id);
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        progress.abort();
        if started_report.is_finished() {
            if let Ok(Err(err)) = started_report.await {
                tracing::warn!(error = %err, "the started report was not confirmed");
            }
        } else {
            started_report.abort();
        }
        let reason = running.reason.load(Ordering::SeqCst);
        let report = match outcome {
            Ok(value) => finished(JobOutcome::Succeeded, Some(value), None),
            Err(err) => {
                let outcome = match reason {
                    STOP_TIMED_OUT => JobOutcome::TimedOut,
                    STOP_CANCELLED => JobOutcome::Cancelled,
                    STOP_HANDED_BACK => JobOutcome::Interrupted,
                    _ => JobOutcome::Failed,
                };
                finished(outcome, None, Some(err))
            }
        };
        self.stats.processed.fetch_add(1, Ordering::Relaxed);
        if report.outcome != JobOutcome::Succeeded {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                outcome = report.outcome.as_str(),
                error = report.error.as_deref().unwrap_or(""),
                "job did not succeed"
            );
        }
        let kind = self.registry.metric_label(&dispatch.kind);
        metrics::counter!("taskmesh_worker_jobs_total", "kind" => kind.clone(), "outcome" => report.outcome.as_str())
            .increment(1);
        metrics::histogram!("taskmesh_worker_job_seconds", "kind" => kind)
            .record((report.ended_at - report.started_at).num_milliseconds() as f64 / 1000.0);
        report
    }

    fn message<T: EventPayload>(&self, payload: T) -> OutgoingMessage {
        message(&self.broker.events_exchange(), payload)
    }

    /// Hands the outcome to the reporter and waits for the broker's confirm. `false`: not
    /// confirmed; the dispatch is requeued and runs again.
    async fn report_until_confirmed(&self, finished: JobFinished, awaited: bool) -> bool {
        let (confirmed, wait) = oneshot::channel();
        let traceparent = shared::trace::current();
        if self
            .reports
            .send((finished, traceparent, awaited, confirmed))
            .is_err()
        {
            return false;
        }
        wait.await.unwrap_or(false)
    }

    /// Listens for `job.cancel` broadcasts on this worker's own queue
    /// (`<ns>.workers.<id>.control`, exclusive: it goes away with the worker).
    pub async fn listen_for_cancels(self: Arc<Self>, shutdown: CancellationToken) {
        keep_consuming(&self.broker, "cancel listener", &shutdown, || {
            self.listen_once(&shutdown)
        })
        .await;
    }

    async fn listen_once(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let channel = self.broker.channel().await?;
        self.broker.declare_events_exchange(&channel).await?;
        let queue = self
            .broker
            .queue_name(&format!("workers.{}.control", self.id));
        channel
            .queue_declare(
                &queue,
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                &queue,
                &self.broker.events_exchange(),
                JobCancel::TYPE,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut messages = channel
            .basic_consume(
                &queue,
                &queue,
                // A lost cancel is covered by the Redis mark; no acks needed.
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = messages.next() => match next {
                    Some(Ok(delivery)) => {
                        let cancel = serde_json::from_slice::<CloudEvent>(&delivery.data)
                            .ok()
                            .and_then(|e| e.decode::<JobCancel>().ok());
                        if let Some(cancel) = cancel {
                            self.cancel(cancel.task_id, cancel.dispatch_id);
                        }
                    }
                    Some(Err(err)) => return Err(err.into()),
                    None => anyhow::bail!("the broker closed the cancel listener"),
                }
            }
        }
    }
}
