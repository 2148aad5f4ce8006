//! The consumer loop: bounded prefetch, ack after the handler's effect is committed, retries
//! through delay queues with exponential backoff, and dead letters that keep their last error.
//!
//! A handler answers each message with `Ok` (ack), [`HandlerError::Retry`] (a delay queue, then
//! back here, until `max_attempts`), [`HandlerError::Reject`] (straight to `<queue>.dlq`) or
//! [`HandlerError::Unavailable`] (its database is away: held and tried again, no attempt spent).
//! The queues and the retry policy are in [`queue`].
//! Retry and dead-letter copies are published with confirms *before* the original is acked, so
//! a crash in between can only duplicate a message, never lose it; handlers deduplicate with
//! [`crate::idempotency`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::FieldTable,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Policy, Stopped};
use crate::broker::{awaited, header_int, keep_consuming, Broker, Publisher, HEADER_ATTEMPT};
use crate::events::{CloudEvent, DecodeError, EventPayload, EventsBatch};

pub mod queue;
mod settle;
mod spans;
pub use queue::{QueueSpec, RetryPolicy};

use settle::{copy_of, settle_after_publish};
use spans::{batch_span, processing_span, settled};

/// One delivered event, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event: CloudEvent,
    pub routing_key: String,
    /// 1 for the first delivery, 2 for the first retry, …
    pub attempt: u32,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again later (a dependency is down, a conflict).
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Will never succeed (malformed, unknown version): dead-letter now.
    #[error("{0:#}")]
    Reject(anyhow::Error),
    /// A dependency the handler needs (the database) cannot be reached: the message is not at
    /// fault. The consumer holds it and tries again, at most [`UNAVAILABLE_MAX_GAP`] apart, until
    /// the dependency is back, without spending its attempts (an outage longer than the retry
    /// schedule would dead-letter every message in flight otherwise).
    #[error("{0:#}")]
    Unavailable(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&err) {
            HandlerError::Unavailable(err.into())
        } else {
            HandlerError::Retry(err.into())
        }
    }
}

/// The longest wait between two tries of a message whose dependency is unavailable.
pub const UNAVAILABLE_MAX_GAP: Duration = Duration::from_secs(2);

/// Runs `attempt` again while it fails with [`HandlerError::Unavailable`], waiting 100 ms, then
/// twice as long each time up to [`UNAVAILABLE_MAX_GAP`]. `None` when `shutdown` fired first
/// (the caller hands the message back, its attempt unspent).
async fn while_unavailable<F, Fut>(
    queue: &str,
    shutdown: &CancellationToken,
    attempt: F,
) -> Option<Result<(), HandlerError>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    let policy = Policy::exponential(Duration::from_millis(100), UNAVAILABLE_MAX_GAP);
    let mut logged = false;
    let unavailable = |err: &HandlerError| {
        let HandlerError::Unavailable(err) = err else {
            return false;
        };
        if !logged {
            tracing::warn!(
                queue,
                error = format!("{err:#}"),
                "a dependency is unavailable; holding the message until it is back"
            );
            logged = true;
        }
        metrics::counter!("taskmesh_consumer_unavailable_total", "queue" => queue.to_string())
            .increment(1);
        true
    };
    match crate::backoff::retry(policy, shutdown, unavailable, attempt).await {
        Ok(()) => Some(Ok(())),
        Err(Stopped::Final(err) | Stopped::GaveUp(err)) => Some(Err(err)),
        Err(Stopped::Shutdown) => None,
    }
}

/// Handles one message. Ack happens after `handle` returns `Ok`, so `handle` must have
/// committed its effect by then.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: &Incoming) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Handles many messages in one transaction: one commit for a whole batch instead of one per
/// message, which is what bounds a consumer's rate (each commit waits for the WAL flush).
pub trait BatchHandler: Handler {
    /// Applies every message's effect, or none (returns an error, having committed nothing).
    /// On error the consumer handles each message of the batch alone with [`Handler::handle`], so
    /// one bad message cannot hold up the rest and retries and dead letters work as usual.
    fn handle_batch(
        &self,
        messages: &[Incoming],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Runs a [`Handler`] over a queue until shutdown, reconnecting when the broker goes away.
pub struct Consumer<H> {
    broker: Broker,
    publisher: Publisher,
    spec: Arc<QueueSpec>,
    handler: Arc<H>,
    prefetch: u16,
    /// Handlers running at once (unbatched consumers), if fewer than the prefetch; the rest of
    /// the prefetch waits.
    concurrency: Option<usize>,
    /// How long a batch waits for more after its first message ([`Consumer::with_linger`]).
    linger: std::time::Duration,
}

impl<H: Handler> Consumer<H> {
    pub fn new(broker: Broker, spec: QueueSpec, handler: H) -> Self {
        let prefetch = broker.config().prefetch;
        Self {
            publisher: Publisher::new(broker.clone()),
            broker,
            spec: Arc::new(spec),
            handler: Arc::new(handler),
            prefetch,
            concurrency: None,
            linger: std::time::Duration::ZERO,
        }
    }

    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Runs at most `concurrency` handlers at once (by default as many as the prefetch). A
    /// service whose handlers each hold a database connection bounds them below its pool's
    /// size ([`crate::db::background_share`]), so a backlog cannot take every connection from
    /// its API.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = Some(concurrency.max(1));
        self
    }

    /// With [`Consumer::run_batched`], waits up to `linger` after a batch's first message for
    /// more to join it (at most the batch's size): a little latency for fewer, larger batches
    /// when each batch costs round trips of its own.
    pub fn with_linger(mut self, linger: std::time::Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Declares the topology now (so publishers find the queue bound) without consuming.
    pub async fn declare(&self) -> Result<(), lapin::Error> {
        let channel = self.broker.channel().await?;
        self.spec.declare(&self.broker, &channel).await?;
        channel.close(200, "declared").await
    }

    /// Consumes until `shutdown` fires, then stops taking messages, finishes those in flight and
    /// returns. Broker failures are logged and retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        keep_consuming(&self.broker, &self.spec.name, &shutdown, || {
            self.consume(&shutdown)
        })
        .await;
        tracing::info!(queue = %self.spec.name, "consumer stopped");
    }

    /// A channel that consumes the queue (declared first) with at most `prefetch` unacked
    /// messages in flight, so one slow consumer cannot hoard the queue and memory stays bounded.
    async fn subscribe(
        &self,
        prefetch: u16,
    ) -> Result<(lapin::Channel, lapin::Consumer), lapin::Error> {
        let channel = self.broker.channel().await?;
        self.spec.declare(&self.broker, &channel).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{}-{}", self.spec.name, uuid::Uuid::new_v4().simple());
        let deliveries = channel
            .basic_consume(
                &self.spec.name,
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((channel, deliveries))
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let (channel, mut deliveries) = self.subscribe(self.prefetch).await?;
        tracing::info!(queue = %self.spec.name, prefetch = self.prefetch, "consuming");
        let mut in_flight = JoinSet::new();
        let concurrency = self.concurrency.unwrap_or(usize::from(self.prefetch));
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                next = deliveries.next(), if in_flight.len() < concurrency => match next {
                    Some(Ok(delivery)) => {
                        let (spec, handler, publisher, shutdown) =
                            (self.spec.clone(), self.handler.clone(), self.publisher.clone(), shutdown.clone());
                        in_flight.spawn(async move {
                            if let Err(err) = process(&spec, &*handler, &publisher, delivery, &shutdown).await {
                                tracing::warn!(queue = %spec.name, error = %err, "could not settle a message; the broker will redeliver it");
                            }
                        });
                    }
                    Some(Err(err)) => break Err(err.into()),
                    None => break Err(anyhow::anyhow!("the broker closed the consumer")),
                }
            }
        };
        // Stop new deliveries, let in-flight messages finish and settle, then close: anything
        // prefetched but not started goes back to the queue for another consumer.
        let _ = channel
            .basic_cancel(deliveries.tag().as_str(), BasicCancelOptions::default())
            .await;
        while in_flight.join_next().await.is_some() {}
        let _ = channel.close(200, "consumer stopped").await;
        result
    }
}

impl<H: BatchHandler> Consumer<H> {
    /// Like [`Consumer::run`], but takes the messages that are waiting (up to `max_batch`) and
    /// applies them with one [`BatchHandler::handle_batch`] call, one batch at a time.
    pub async fn run_batched(self, max_batch: usize, shutdown: CancellationToken) {
        let max_batch = max_batch.max(1);
        keep_consuming(&self.broker, &self.spec.name, &shutdown, || {
            self.consume_batched(max_batch, &shutdown)
        })
        .await;
        tracing::info!(queue = %self.spec.name, "consumer stopped");
    }

    async fn consume_batched(
        &self,
        max_batch: usize,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        // The prefetch must cover a batch, or batches never fill.
        let prefetch = self
            .prefetch
            .max(u16::try_from(max_batch).unwrap_or(u16::MAX));
        let (channel, mut deliveries) = self.subscribe(prefetch).await?;
        tracing::info!(queue = %self.spec.name, prefetch, max_batch, "consuming in batches");
        let result = loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                next = deliveries.next() => next,
            };
            let mut batch = match first {
                Some(Ok(delivery)) => vec![delivery],
                Some(Err(err)) => break Err(err.into()),
                None => break Err(anyhow::anyhow!("the broker closed the consumer")),
            };
            // Whatever else has arrived already joins the batch, and so does what arrives
            // within the linger (none by default: then nothing waits for more), unless the
            // batch holds a message something waits on at once (`HEADER_AWAITED`).
            let until = tokio::time::Instant::now() + self.linger;
            let mut hurry = awaited(batch[0].properties.headers().as_ref());
            while batch.len() < max_batch {
                let next = match futures::FutureExt::now_or_never(deliveries.next()) {
                    Some(next) => next,
                    None if self.linger.is_zero() || hurry => break,
                    None => match tokio::time::timeout_at(until, deliveries.next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    },
                };
                match next {
                    Some(Ok(delivery)) => {
                        hurry |= awaited(delivery.properties.headers().as_ref());
                        batch.push(delivery);
                    }
                    _ => break,
                }
            }
            if let Err(err) = self.process_batch(batch, shutdown).await {
                // Start over on a new channel: closing this one returns whatever the batch left
                // unsettled, which a later multiple-ack must not settle by accident.
                tracing::warn!(queue = %self.spec.name, error = %err, "could not settle a batch; the broker will redeliver it");
                break Err(err.into());
            }
        };
        let _ = channel
            .basic_cancel(deliveries.tag().as_str(), BasicCancelOptions::default())
            .await;
        let _ = channel.close(200, "consumer stopped").await;
        result
    }

    /// One message alone, as [`Consumer::run`] handles it.
    async fn process_one(
        &self,
        delivery: Delivery,
        shutdown: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        process(
            &self.spec,
            &*self.handler,
            &self.publisher,
            delivery,
            shutdown,
        )
        .await
    }

    async fn process_batch(
        &self,
        batch: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let mut messages = Vec::with_capacity(batch.len());
        let mut parsed = Vec::with_capacity(batch.len());
        for delivery in batch {
            let attempt = attempt_of(&delivery);
            let unpacked = serde_json::from_slice::<CloudEvent>(&delivery.data)
                .ok()
                .and_then(|event| {
                    unpack(&self.spec, event, delivery.routing_key.as_str(), attempt).ok()
                });
            match unpacked {
                Some(unpacked) => {
                    messages.extend(unpacked);
                    parsed.push(delivery);
                }
                // Malformed: the single path dead-letters it.
                None => self.process_one(delivery, shutdown).await?,
            }
        }
        if messages.is_empty() {
            // Nothing wanted in them (batches of other types only): settled at once.
            if let Some(last) = parsed.last() {
                last.acker.ack(BasicAckOptions { multiple: true }).await?;
            }
            return Ok(());
        }
        let span =
            tracing::info_span!("consume_batch", queue = %self.spec.name, size = messages.len());
        // A batch of events of many traces: its processing starts a trace of its own, linked to
        // each event's (each event's own effects continue its trace, as the handler says).
        let service = self.broker.service();
        let started = std::time::SystemTime::now();
        let processing = match crate::trace::export::enabled() {
            true => {
                let events: Vec<&CloudEvent> = messages.iter().map(|m| &m.event).collect();
                batch_span(service, &self.spec, &events)
            }
            false => crate::trace::Span::none(),
        };
        let outcome = while_unavailable(&self.spec.name, shutdown, || {
            processing.enter(tracing::Instrument::instrument(
                self.handler.handle_batch(&messages),
                span.clone(),
            ))
        })
        .await;
        let queue = self.spec.name.clone();
        let Some(outcome) = outcome else {
            // Stopping while the database is away: the batch goes back, its attempts unspent.
            if let Some(last) = parsed.last() {
                last.acker
                    .nack(BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    })
                    .await?;
            }
            return Ok(());
        };
        match outcome {
            Ok(()) => {
                // One ack for the batch: every earlier delivery on this channel is settled
                // (batches are handled one after another, their malformed messages first).
                if let Some(last) = parsed.last() {
                    last.acker.ack(BasicAckOptions { multiple: true }).await?;
                }
                settled(service, &queue, "ack", processing.traceparent(), started);
                metrics::counter!("taskmesh_consumer_messages_total", "queue" => queue, "outcome" => "ack")
                    .increment(parsed.len() as u64);
            }
            Err(err) => {
                tracing::info!(queue = %self.spec.name, error = format!("{err:#}"), size = parsed.len(), "batch failed; handling its messages one by one");
                for delivery in parsed {
                    self.process_one(delivery, shutdown).await?;
                }
            }
        }
        Ok(())
    }
}

/// Which delivery of its message this is: 1 for the first, 2 for the first retry, …
fn attempt_of(delivery: &Delivery) -> u32 {
    let headers = delivery.properties.headers().as_ref();
    header_int(headers, HEADER_ATTEMPT)
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(1)
        .max(1)
}

/// The messages a delivery carries: its event, or the events of an [`EventsBatch`] that this
/// queue wants (each under its own type as routing key), in the batch's order.
fn unpack(
    spec: &QueueSpec,
    event: CloudEvent,
    routing_key: &str,
    attempt: u32,
) -> Result<Vec<Incoming>, DecodeError> {
    if event.event_type != EventsBatch::TYPE {
        let routing_key = routing_key.to_string();
        return Ok(vec![Incoming {
            event,
            routing_key,
            attempt,
        }]);
    }
    let batch: EventsBatch = event.into_payload()?;
    Ok(batch
        .events
        .into_iter()
        .filter(|event| spec.accepts(&event.event_type))
        .map(|event| Incoming {
            routing_key: event.event_type.clone(),
            event,
            attempt,
        })
        .collect())
}

async fn process<H: Handler>(
    spec: &QueueSpec,
    handler: &H,
    publisher: &Publisher,
    delivery: Delivery,
    shutdown: &CancellationToken,
) -> Result<(), lapin::Error> {
    let attempt = attempt_of(&delivery);
    let service = publisher.broker().service();
    let started = std::time::SystemTime::now();
    // The last processing span, which the settling's follows.
    let settle_parent = std::sync::Mutex::new(None::<String>);
    let messages = serde_json::from_slice::<CloudEvent>(&delivery.data)
        .map_err(|err| {
            HandlerError::Reject(anyhow::anyhow!("not a CloudEvents JSON message: {err}"))
        })
        .and_then(|event| {
            unpack(spec, event, delivery.routing_key.as_str(), attempt)
                .map_err(|err| HandlerError::Reject(err.into()))
        });
    let outcome = match messages {
        Ok(messages) => {
            // One after another; the first failure settles the delivery (a batch is retried
            // as a whole, and what it applied already is deduplicated).
            let handled = while_unavailable(&spec.name, shutdown, || async {
                for message in &messages {
                    let event = &message.event;
                    let span = tracing::info_span!("consume", queue = %spec.name, event_id = %event.id, event_type = %event.event_type, attempt);
                    let handled = tracing::Instrument::instrument(handler.handle(message), span);
                    // Events the handler causes continue the trace of the event it handles
                    // (from this processing's span, while traces are exported).
                    let mut processing = processing_span(service, spec, event, event.traceparent.as_deref(), &[]);
                    let outcome = crate::trace::scope(event.traceparent.clone(), processing.enter(handled)).await;
                    if let Err(err) = &outcome {
                        processing.error(err.to_string());
                    }
                    if let Some(own) = processing.traceparent() {
                        *settle_parent.lock().expect("never poisoned") = Some(own.to_string());
                    }
                    outcome?;
                }
                Ok(())
            })
            .await;
            match handled {
                Some(outcome) => outcome,
                None => {
                    // Stopping while the dependency is away: back to the queue, attempt unspent.
                    return delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await;
                }
            }
        }
        Err(err) => Err(err),
    };
    let queue = spec.name.clone();
    let outcome_label = match outcome {
        Ok(()) => {
            delivery.acker.ack(BasicAckOptions::default()).await?;
            "ack"
        }
        Err(HandlerError::Retry(err) | HandlerError::Unavailable(err))
            if attempt < spec.retry.max_attempts =>
        {
            let delay = spec.retry.delay_after(attempt);
            let target = spec.retry_queue(delay);
            tracing::info!(queue = %spec.name, attempt, retry_in = ?delay, error = format!("{err:#}"), "handler failed; retrying later");
            let copy = copy_of(&delivery, &target, attempt + 1, &format!("{err:#}"), None);
            settle_after_publish(publisher, &delivery, copy).await?;
            "retry"
        }
        Err(
            HandlerError::Retry(err) | HandlerError::Reject(err) | HandlerError::Unavailable(err),
        ) => {
            let target = spec.dead_letter_queue();
            tracing::warn!(queue = %spec.name, attempt, error = format!("{err:#}"), "dead-lettering message");
            let copy = copy_of(
                &delivery,
                &target,
                attempt,
                &format!("{err:#}"),
                Some(&spec.name),
            );
            settle_after_publish(publisher, &delivery, copy).await?;
            "dead_letter"
        }
    };
    let settle_parent = settle_parent.into_inner().expect("never poisoned");
    settled(
        service,
        &spec.name,
        outcome_label,
        settle_parent.as_deref(),
        started,
    );
    metrics::counter!("taskmesh_consumer_messages_total", "queue" => queue, "outcome" => outcome_label)
        .increment(1);
    Ok(())
}
