//! The transactional outbox: events are written in the same transaction as the state change and
//! published afterwards by a relay, so an event exists if and only if its change committed.
//!
//! The relay claims due rows, in the order they fell due, with `FOR UPDATE SKIP LOCKED`
//! (several replicas share the work), publishes them pipelined with confirms, marks them
//! published and commits. A crash between publishing and marking publishes the rows again:
//! delivery is at-least-once and consumers
//! deduplicate on the event id ([`crate::idempotency`]). An insert trigger sends
//! `NOTIFY taskmesh_outbox`, which wakes the relay at once; a poll is the fallback, and rows
//! with a later `available_at` (reminders, scheduled jobs) wake it when they fall due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{postgres::PgListener, PgConnection, PgPool, Row};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backoff::{Backoff, Policy};
use crate::broker::{OutgoingMessage, PublishError, Publisher};
use crate::config::OutboxConfig;
use crate::events::{CloudEvent, EventPayload, EventsBatch};

/// The channel the outbox insert trigger notifies.
pub const NOTIFY_CHANNEL: &str = "taskmesh_outbox";

/// Writes `event` to the outbox inside `tx`; it is published once `tx` commits.
pub async fn enqueue<T: EventPayload>(
    tx: &mut PgConnection,
    event: CloudEvent<T>,
) -> Result<Uuid, sqlx::Error> {
    enqueue_at(tx, event, None).await
}

/// Like [`enqueue`], but not published before `available_at`.
pub async fn enqueue_at<T: EventPayload>(
    tx: &mut PgConnection,
    event: CloudEvent<T>,
    available_at: Option<DateTime<Utc>>,
) -> Result<Uuid, sqlx::Error> {
    let route = Route {
        available_at,
        ..Route::default()
    };
    enqueue_routed(tx, event, route).await
}

/// Writes several events of one type in one statement (the batch paths).
pub async fn enqueue_many<T: EventPayload>(
    tx: &mut PgConnection,
    events: Vec<CloudEvent<T>>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for event in events {
        ids.push(event.id);
        let event = event
            .into_untyped()
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        payloads.push(serde_json::to_value(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
    }
    sqlx::query(
        "INSERT INTO outbox (id, routing_key, payload)
         SELECT id, $3, payload FROM unnest($1::uuid[], $2::jsonb[]) AS e(id, payload)",
    )
    .bind(&ids)
    .bind(&payloads)
    .bind(T::TYPE)
    .execute(tx)
    .await?;
    Ok(())
}

/// An event ready for the outbox with its route, for [`enqueue_all`].
#[derive(Debug, Clone)]
pub struct Pending {
    pub event: CloudEvent,
    pub route: Route,
}

impl Pending {
    pub fn new<T: EventPayload>(event: CloudEvent<T>, route: Route) -> Result<Self, sqlx::Error> {
        Ok(Self {
            event: event
                .into_untyped()
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
            route,
        })
    }
}

/// Writes several events, of any types and routes, in one statement.
pub async fn enqueue_all(tx: &mut PgConnection, rows: Vec<Pending>) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    let mut available = Vec::with_capacity(rows.len());
    let mut priorities: Vec<Option<i16>> = Vec::with_capacity(rows.len());
    for Pending { event, route } in rows {
        ids.push(event.id);
        keys.push(
            route
                .routing_key
                .unwrap_or_else(|| event.event_type.clone()),
        );
        payloads.push(serde_json::to_value(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        available.push(route.available_at);
        priorities.push(route.priority.map(i16::from));
    }
    sqlx::query(
        "INSERT INTO outbox (id, routing_key, payload, available_at, priority)
         SELECT id, key, payload, COALESCE(at, clock_timestamp()), priority
           FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::int2[])
             AS e(id, key, payload, at, priority)",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&payloads)
    .bind(&available)
    .bind(&priorities)
    .execute(tx)
    .await?;
    Ok(())
}

/// How an outbox row is published, beyond the defaults (the events exchange, the event type as
/// routing key, now, no priority).
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Another routing key than the event type (job dispatches go to `job.dispatch.<pool>`).
    pub routing_key: Option<String>,
    /// Not published before this.
    pub available_at: Option<DateTime<Utc>>,
    /// The AMQP priority of the message.
    pub priority: Option<u8>,
}

/// Writes `event` to the outbox inside `tx`, published as `route` says once `tx` commits.
pub async fn enqueue_routed<T: EventPayload>(
    tx: &mut PgConnection,
    event: CloudEvent<T>,
    route: Route,
) -> Result<Uuid, sqlx::Error> {
    let event = event
        .into_untyped()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let id = event.id;
    let routing_key = route
        .routing_key
        .unwrap_or_else(|| event.event_type.clone());
    let payload = serde_json::to_value(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO outbox (id, routing_key, payload, available_at, priority)
         VALUES ($1, $2, $3, COALESCE($4, clock_timestamp()), $5)",
    )
    .bind(id)
    .bind(routing_key)
    .bind(payload)
    .bind(route.available_at)
    .bind(route.priority.map(i16::from))
    .execute(tx)
    .await?;
    Ok(id)
}

/// Whether an outbox row is a command that must reach its queue (a job dispatch or dead
/// letter) rather than an event nobody may be listening for: unroutable, it is retried with
/// backoff instead of being marked, so a job is never dropped while its pool's queue is missing.
fn must_route(routing_key: &str) -> bool {
    routing_key.starts_with("job.dispatch.")
        || routing_key.starts_with("job.dead.")
        || routing_key.starts_with("notify.")
}

/// The routing key of `service`'s batches: each relay round's events in one message, for the
/// platform's own consumers ([`crate::consumer::QueueSpec::batches_of`]).
pub fn batch_key(service: &str) -> String {
    format!("events.batch.{service}")
}

/// A wake that published fewer rows than this (and some) means small transactions are
/// trickling in: the relay lingers before the next round (`outbox.linger_ms`).
const TRICKLE_ROWS: usize = 32;

/// The longest gap between relay rounds while the broker or the database is away: events flow
/// again within about two seconds of its return.
const RELAY_RETRY_GAP: Duration = Duration::from_secs(2);

/// What one relay round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundStats {
    /// Rows claimed this round.
    pub claimed: usize,
    pub published: usize,
    /// Rows no queue was bound for (no consumer in the topology wants them): marked with
    /// `last_error`, counted and logged, not retried.
    pub unroutable: usize,
    /// Rows the broker refused; retried later with backoff.
    pub failed: usize,
}

/// Publishes committed outbox rows.
#[derive(Clone, Debug)]
pub struct Relay {
    pool: PgPool,
    publisher: Publisher,
    config: OutboxConfig,
    exchange: String,
    /// Routing keys the broker last returned as unroutable, and when (see
    /// `outbox.unroutable_recheck_ms`).
    unroutable: Arc<Mutex<HashMap<String, Instant>>>,
    /// The publishing service and its batch key, when each round's events also go out as one
    /// [`EventsBatch`].
    batching: Option<(String, String)>,
}

impl Relay {
    pub fn new(pool: PgPool, publisher: Publisher, config: OutboxConfig) -> Self {
        let exchange = publisher.broker().events_exchange();
        Self {
            pool,
            publisher,
            config,
            exchange,
            unroutable: Arc::default(),
            batching: None,
        }
    }

    /// Also publishes each round's events (not its commands) as one [`EventsBatch`] on
    /// [`batch_key`]`(service)`: a queue that binds it gets one delivery per round instead of
    /// one per event. The events are still published one by one for any other queue (and
    /// skipped while none is bound, as every unroutable type is).
    pub fn batching(mut self, service: &str) -> Self {
        self.batching = Some((service.to_string(), batch_key(service)));
        self
    }

    /// Whether rows with `routing_key` are known to have no queue, recently enough to skip
    /// publishing them.
    fn known_unroutable(&self, routing_key: &str) -> bool {
        let window = Duration::from_millis(self.config.unroutable_recheck_ms);
        !window.is_zero()
            && !must_route(routing_key)
            && self
                .unroutable
                .lock()
                .expect("never poisoned")
                .get(routing_key)
                .is_some_and(|at| at.elapsed() < window)
    }

    /// Publishes one batch of due rows and marks them.
    pub async fn publish_due(&self) -> anyhow::Result<RoundStats> {
        self.round(true).await
    }

    /// Publishes one batch but never marks it, as if the relay died between the broker's confirm
    /// and the commit. Only for tests of the at-least-once guarantee.
    #[doc(hidden)]
    pub async fn publish_due_then_crash(&self) -> anyhow::Result<RoundStats> {
        self.round(false).await
    }

    /// Publishes until nothing is due. Returns the rows published.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let stats = self.publish_due().await?;
            total += stats.published + stats.unroutable;
            if stats.claimed < self.config.batch_size as usize || stats.claimed == 0 {
                return Ok(total);
            }
        }
    }

    async fn round(&self, mark: bool) -> anyhow::Result<RoundStats> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, exchange, routing_key, payload::text AS payload, attempts, priority
               FROM outbox
              WHERE published_at IS NULL AND available_at <= statement_timestamp()
              ORDER BY available_at, seq
              LIMIT $1
                FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(self.config.batch_size))
        .fetch_all(&mut *tx)
        .await?;
        let mut stats = RoundStats {
            claimed: rows.len(),
            ..Default::default()
        };
        if rows.is_empty() {
            return Ok(stats);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut messages = Vec::with_capacity(rows.len());
        // Events of a type no queue wanted a moment ago are not published again yet.
        let mut skipped = Vec::new();
        let batch_key = self
            .batching
            .as_ref()
            .filter(|(_, key)| !self.known_unroutable(key));
        let mut batched = Vec::new();
        for row in &rows {
            let id: Uuid = row.get("id");
            let routing_key: String = row.get("routing_key");
            if batch_key.is_some() && !must_route(&routing_key) {
                let payload: &str = row.get("payload");
                match serde_json::from_str::<CloudEvent>(payload) {
                    Ok(event) => batched.push(event),
                    Err(err) => {
                        tracing::warn!(%id, error = %err, "an outbox row is not an event; left out of the batch")
                    }
                }
            }
            if self.known_unroutable(&routing_key) {
                metrics::counter!("taskmesh_outbox_unroutable_total", "routing_key" => routing_key)
                    .increment(1);
                skipped.push(id);
                continue;
            }
            let exchange: Option<String> = row.get("exchange");
            let payload: String = row.get("payload");
            let mut message = OutgoingMessage::new(
                exchange.unwrap_or_else(|| self.exchange.clone()),
                routing_key,
                payload.into_bytes(),
            );
            message.message_id = Some(id.to_string());
            message.priority = row
                .get::<Option<i16>, _>("priority")
                .and_then(|p| u8::try_from(p).ok());
            ids.push(id);
            messages.push(message);
        }
        let batch = match (batch_key, batched.is_empty()) {
            (Some((service, key)), false) => {
                let event = CloudEvent::new(service, EventsBatch { events: batched });
                let mut message =
                    OutgoingMessage::new(self.exchange.clone(), key, serde_json::to_vec(&event)?);
                message.message_id = Some(event.id.to_string());
                messages.push(message);
                true
            }
            _ => false,
        };
        // A channel failure aborts the round: the transaction rolls back and the rows stay due.
        let mut results = self.publisher.publish_batch(&messages).await?;
        if batch {
            let message = messages.pop().expect("the batch was pushed last");
            match results.pop().expect("one result per message") {
                Ok(()) => {
                    self.unroutable
                        .lock()
                        .expect("never poisoned")
                        .remove(&message.routing_key);
                }
                Err(PublishError::Unroutable { routing_key, .. }) => {
                    // No queue takes this service's batches: not built again until the recheck.
                    self.unroutable
                        .lock()
                        .expect("never poisoned")
                        .insert(routing_key, Instant::now());
                }
                // Its events would be missing for the queues that take batches: the round
                // rolls back and everything in it is published again (consumers deduplicate).
                Err(err) => anyhow::bail!("the broker refused a batch of events: {err}"),
            }
        }
        if !mark {
            // Roll back now: a dropped transaction rolls back only when its connection is next
            // used, and until then its row locks make the next round skip these rows.
            tx.rollback().await?;
            return Ok(stats);
        }
        let mut published = Vec::new();
        let mut unroutable = skipped;
        for ((id, result), message) in ids.into_iter().zip(results).zip(&messages) {
            match result {
                Ok(()) => {
                    self.unroutable
                        .lock()
                        .expect("never poisoned")
                        .remove(&message.routing_key);
                    published.push(id);
                }
                Err(PublishError::Unroutable { routing_key, .. }) if !must_route(&routing_key) => {
                    // Normal for an event no consumer of this deployment wants; counted.
                    tracing::debug!(%id, %routing_key, "no queue is bound for this event type; marked unroutable");
                    self.unroutable
                        .lock()
                        .expect("never poisoned")
                        .insert(routing_key.clone(), Instant::now());
                    metrics::counter!("taskmesh_outbox_unroutable_total", "routing_key" => routing_key)
                        .increment(1);
                    unroutable.push(id);
                }
                Err(err) => {
                    tracing::warn!(%id, routing_key = %message.routing_key, error = %err, "broker refused an event; will retry");
                    stats.failed += 1;
                    sqlx::query(
                        "UPDATE outbox
                            SET attempts = attempts + 1, last_error = $2,
                                available_at = now() + make_interval(secs => least(300, 2 ^ least(attempts, 10)))
                          WHERE id = $1",
                    )
                    .bind(id)
                    .bind(err.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if !published.is_empty() || !unroutable.is_empty() {
            let settled: Vec<Uuid> = published.iter().chain(&unroutable).copied().collect();
            sqlx::query(
                "UPDATE outbox
                    SET published_at = now(),
                        last_error = CASE WHEN id = ANY($2) THEN 'unroutable: no queue bound'
                                          ELSE last_error END
                  WHERE id = ANY($1)",
            )
            .bind(&settled)
            .bind(&unroutable)
            .execute(&mut *tx)
            .await?;
        }
        // Losing this commit in a crash only publishes the rows again (at-least-once, and
        // consumers deduplicate), so it need not wait for the WAL flush.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        stats.published = published.len();
        stats.unroutable = unroutable.len();
        metrics::counter!("taskmesh_outbox_published_total").increment(published.len() as u64);
        Ok(stats)
    }

    /// Deletes published rows and processed-event records past their retention.
    pub async fn cleanup(&self) -> Result<u64, sqlx::Error> {
        let outbox = sqlx::query(
            "DELETE FROM outbox WHERE id IN (
                SELECT id FROM outbox
                 WHERE published_at < now() - make_interval(hours => $1)
                 LIMIT 10000)",
        )
        .bind(self.config.retention_hours as i32)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let processed = sqlx::query(
            "DELETE FROM processed_events WHERE (consumer, event_id) IN (
                SELECT consumer, event_id FROM processed_events
                 WHERE processed_at < now() - make_interval(hours => $1)
                 LIMIT 10000)",
        )
        .bind(self.config.processed_retention_hours as i32)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(outbox + processed)
    }

    /// Time until the earliest row that is not yet due, if any.
    async fn next_due_in(&self) -> Result<Option<Duration>, sqlx::Error> {
        let seconds: Option<f64> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM (min(available_at) - now()))::float8
               FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
    }

    /// Runs until `shutdown`: publishes whatever is due, then waits for a NOTIFY, the next
    /// `available_at`, or the poll interval, whichever comes first.
    pub async fn run(self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        let linger = Duration::from_millis(self.config.linger_ms);
        // LISTEN on a connection of its own, never one of the service's pool: a listening
        // connection that went back to the pool (the listener drops it after an error) would
        // hand a commit's NOTIFY to a request's statement, which then fails.
        let listener_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let mut listener: Option<PgListener> = None;
        let mut last_cleanup = Instant::now();
        let mut backoff = Backoff::new(Policy::exponential(
            Duration::from_millis(100),
            RELAY_RETRY_GAP,
        ));
        while !shutdown.is_cancelled() {
            if listener.is_none() {
                listener = match PgListener::connect_with(&listener_pool).await {
                    Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                        Ok(()) => Some(l),
                        Err(err) => {
                            tracing::warn!(error = %err, "outbox relay cannot LISTEN; polling");
                            None
                        }
                    },
                    Err(err) => {
                        tracing::warn!(error = %err, "outbox relay cannot LISTEN; polling");
                        None
                    }
                };
            }
            let mut wait = poll;
            let trickle;
            match self.drain().await {
                Ok(published) => {
                    // A trickle: the last wake found a few rows, so more are likely on the way.
                    // Not after idleness (the first event goes at once) nor under big commits.
                    trickle = published > 0 && published < TRICKLE_ROWS;
                    backoff.reset();
                    if let Ok(Some(due)) = self.next_due_in().await {
                        wait = wait.min(due);
                    }
                }
                Err(err) => {
                    // Wait out the gap whatever commits meanwhile: a wake per commit would
                    // hammer a broker that is away (and log each try).
                    tracing::warn!(error = format!("{err:#}"), "outbox relay round failed");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = Instant::now();
                match self.cleanup().await {
                    Ok(n) if n > 0 => tracing::debug!(deleted = n, "outbox retention"),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "outbox retention failed"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => {
                    if notified.is_err() {
                        listener = None;
                    } else {
                        if trickle && linger > Duration::ZERO {
                            // Let more commits land, so a stream of small transactions is
                            // published in fewer, larger rounds.
                            tokio::time::sleep(linger).await;
                        }
                        // Every commit notifies. Those already received are for rows committed
                        // before the next round's claim, which takes them all: one round, not
                        // one per commit (most of them would find nothing).
                        if let Some(l) = listener.as_mut() {
                            while l.next_buffered().is_some() {}
                        }
                    }
                }
            }
        }
        tracing::info!("outbox relay stopped");
    }
}
