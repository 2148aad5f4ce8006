//! The relay: publishes committed outbox rows (see the module above).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{postgres::PgListener, PgPool};
use tokio_util::sync::CancellationToken;

use super::claim;
use super::message::{batch_key, must_route, NOTIFY_CHANNEL, NOTIFY_NOW};
use super::settle::Settle;
use crate::backoff::{Backoff, Policy};
use crate::broker::{OutgoingMessage, PublishError, Publisher};
use crate::config::OutboxConfig;
use crate::events::{CloudEvent, EventsBatch};

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
            // A round stops short of the batch only when nothing more was due.
            if stats.claimed < self.config.batch_size as usize {
                return Ok(total);
            }
        }
    }

    async fn round(&self, mark: bool) -> anyhow::Result<RoundStats> {
        let mut tx = self.pool.begin().await?;
        let claim = claim::claim(&mut tx, self.config.batch_size).await?;
        let mut stats = RoundStats {
            claimed: claim.messages.len(),
            ..Default::default()
        };
        if claim.messages.is_empty() && claim.unreadable.is_empty() {
            return Ok(stats);
        }
        let mut claimed = Vec::with_capacity(claim.messages.len());
        let mut outgoing = Vec::with_capacity(claim.messages.len() + 1);
        // Events of a type no queue wanted a moment ago are not published again yet.
        let mut skipped = Vec::new();
        let batch_key = self
            .batching
            .as_ref()
            .filter(|(_, key)| !self.known_unroutable(key));
        let mut batched = Vec::new();
        for mut message in claim.messages {
            if batch_key.is_some() && !must_route(&message.routing_key) {
                match serde_json::from_str::<CloudEvent>(&message.payload) {
                    Ok(event) => batched.push(event),
                    Err(err) => {
                        tracing::warn!(id = %message.id, error = %err, "an outbox message is not an event; left out of the batch")
                    }
                }
            }
            if self.known_unroutable(&message.routing_key) {
                metrics::counter!("taskmesh_outbox_unroutable_total", "routing_key" => message.routing_key.clone())
                    .increment(1);
                skipped.push(message);
                continue;
            }
            let mut out = OutgoingMessage::new(
                message
                    .exchange
                    .clone()
                    .unwrap_or_else(|| self.exchange.clone()),
                message.routing_key.clone(),
                std::mem::take(&mut message.payload).into_bytes(),
            );
            out.message_id = Some(message.id.to_string());
            out.priority = message.priority;
            outgoing.push(out);
            claimed.push(message);
        }
        let batch = match (batch_key, batched.is_empty()) {
            (Some((service, key)), false) => {
                let event = CloudEvent::new(service, EventsBatch { events: batched });
                let mut message =
                    OutgoingMessage::new(self.exchange.clone(), key, serde_json::to_vec(&event)?);
                message.message_id = Some(event.id.to_string());
                outgoing.push(message);
                true
            }
            _ => false,
        };
        // A channel failure aborts the round: the transaction rolls back and the rows stay due.
        let mut results = self.publisher.publish_batch(&outgoing).await?;
        if batch {
            let message = outgoing.pop().expect("the batch was pushed last");
            match results.pop().expect("one result per message") {
                Ok(()) => self.routable(&message.routing_key),
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
        let mut settle = Settle {
            unroutable: skipped
                .iter()
                .filter(|m| !m.grouped)
                .map(|m| m.row)
                .collect(),
            ..Settle::default()
        };
        stats.unroutable = skipped.len();
        for ((mut message, result), out) in claimed.into_iter().zip(results).zip(&outgoing) {
            match result {
                Ok(()) => {
                    self.routable(&message.routing_key);
                    stats.published += 1;
                    if !message.grouped {
                        settle.published.push(message.row);
                    }
                }
                Err(PublishError::Unroutable { routing_key, .. }) if !must_route(&routing_key) => {
                    // Normal for an event no consumer of this deployment wants; counted.
                    tracing::debug!(id = %message.id, %routing_key, "no queue is bound for this event type; marked unroutable");
                    self.unroutable
                        .lock()
                        .expect("never poisoned")
                        .insert(routing_key.clone(), Instant::now());
                    metrics::counter!("taskmesh_outbox_unroutable_total", "routing_key" => routing_key)
                        .increment(1);
                    stats.unroutable += 1;
                    if !message.grouped {
                        settle.unroutable.push(message.row);
                    }
                }
                Err(err) => {
                    tracing::warn!(id = %message.id, routing_key = %message.routing_key, error = %err, "broker refused an event; will retry");
                    stats.failed += 1;
                    message.payload = String::from_utf8_lossy(&out.body).into_owned();
                    settle.failed.push((message, err.to_string()));
                }
            }
        }
        settle.groups = claim.groups;
        settle.unreadable = claim.unreadable;
        settle.write(&mut tx).await?;
        // Losing this commit in a crash only publishes the rows again (at-least-once, and
        // consumers deduplicate), so it need not wait for the WAL flush.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("taskmesh_outbox_published_total").increment(stats.published as u64);
        Ok(stats)
    }

    /// Forgets that `routing_key` was unroutable: a queue took it.
    fn routable(&self, routing_key: &str) {
        let mut unroutable = self.unroutable.lock().expect("never poisoned");
        if !unroutable.is_empty() {
            unroutable.remove(routing_key);
        }
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
                        Some(l) => l.recv().await.map(|n| n.payload() == NOTIFY_NOW),
                        None => std::future::pending().await,
                    }
                } => {
                    if notified.is_err() {
                        listener = None;
                    } else {
                        // A commit that asked for it ([`super::wake_now`]) goes at once.
                        let now = notified.unwrap_or(false);
                        if trickle && linger > Duration::ZERO && !now {
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
