//! A consumer's queues (its queue, one delay queue per backoff step, its dead-letter queue)
//! and the retry policy that shapes them.

use std::time::Duration;

use lapin::{
    options::{QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
    Channel,
};

use crate::broker::Broker;
use crate::config::ConsumerConfig;

/// How often and how patiently a failing message is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Deliveries before the message is dead-lettered (the first one counts).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base: Duration,
    /// Upper bound of one delay.
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &ConsumerConfig) -> Self {
        Self {
            max_attempts: config.max_attempts,
            base: Duration::from_millis(config.retry_base_ms),
            max: Duration::from_millis(config.retry_max_ms.max(config.retry_base_ms)),
        }
    }

    /// The delay after failed attempt `attempt` (1-based): base, 2×base, 4×base, … capped.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The distinct delays in use, shortest first; one delay queue each.
    pub fn delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = (1..self.max_attempts)
            .map(|a| self.delay_after(a))
            .collect();
        delays.dedup();
        delays
    }
}

/// A consumer's queue: its bindings, retry policy and safety net.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Full queue name, e.g. `taskmesh.notify-svc`.
    pub name: String,
    /// Routing-key patterns bound from the events exchange.
    pub bindings: Vec<String>,
    /// Event types taken from the [`crate::events::EventsBatch`] messages this queue binds
    /// (`events.batch.<service>`, [`QueueSpec::batches_of`]) rather than one message each:
    /// not bound on their own, and unbound if an earlier version bound them.
    pub batched: Vec<String>,
    pub retry: RetryPolicy,
    /// Quorum-queue deliveries before the broker dead-letters a message by itself.
    pub delivery_limit: u32,
    /// Only one consumer receives at a time (the broker fails over to the next): the queue's
    /// order is kept even with several replicas consuming it.
    pub single_active: bool,
}

/// Whether AMQP topic `pattern` (`*` one word, `#` any number) matches routing key `key`.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn words(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.split_first(), key.split_first()) {
            (None, None) => true,
            (Some((&"#", rest)), _) => {
                words(rest, key) || key.split_first().is_some_and(|(_, k)| words(pattern, k))
            }
            (Some((p, rest)), Some((k, key_rest))) if *p == "*" || p == k => words(rest, key_rest),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    words(&pattern, &key)
}

impl QueueSpec {
    /// Whether this queue wants events of `event_type`: one of its bindings or batched types
    /// matches it. The events of an [`crate::events::EventsBatch`] are filtered by it.
    pub fn accepts(&self, event_type: &str) -> bool {
        self.bindings
            .iter()
            .chain(&self.batched)
            .any(|p| topic_matches(p, event_type))
    }

    /// A queue named `<ns>.<name>` with the configured retry policy.
    pub fn new(broker: &Broker, name: &str, config: &ConsumerConfig) -> Self {
        Self {
            name: broker.queue_name(name),
            bindings: Vec::new(),
            batched: Vec::new(),
            retry: RetryPolicy::from_config(config),
            delivery_limit: config.delivery_limit,
            single_active: false,
        }
    }

    /// See [`QueueSpec::single_active`].
    pub fn single_active(mut self) -> Self {
        self.single_active = true;
        self
    }

    pub fn bind(mut self, pattern: &str) -> Self {
        self.bindings.push(pattern.to_string());
        self
    }

    /// Takes the events of `service`'s relay rounds as one batch message per round
    /// ([`crate::outbox::batch_key`]), keeping those whose type matches one of `patterns`.
    pub fn batches_of(mut self, service: &str, patterns: &[&str]) -> Self {
        self.bindings.push(crate::outbox::batch_key(service));
        self.batched.extend(patterns.iter().map(|p| p.to_string()));
        self
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.name)
    }

    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.retry.{}ms", self.name, delay.as_millis())
    }

    /// Declares the exchange, this queue, its delay queues and its dead-letter queue, and binds
    /// it. Idempotent, so every start (and every reconnect) runs it.
    pub async fn declare(&self, broker: &Broker, channel: &Channel) -> Result<(), lapin::Error> {
        broker.declare_events_exchange(channel).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let dlq = self.dead_letter_queue();
        channel
            .queue_declare(&dlq, durable, broker.queue_args(None, None, None))
            .await?;
        let mut args = broker.queue_args(Some(&dlq), None, Some(self.delivery_limit));
        if self.single_active {
            args.insert(
                "x-single-active-consumer".into(),
                lapin::types::AMQPValue::Boolean(true),
            );
        }
        channel.queue_declare(&self.name, durable, args).await?;
        for delay in self.retry.delays() {
            channel
                .queue_declare(
                    &self.retry_queue(delay),
                    durable,
                    broker.queue_args(Some(&self.name), Some(delay), None),
                )
                .await?;
        }
        for pattern in &self.bindings {
            channel
                .queue_bind(
                    &self.name,
                    &broker.events_exchange(),
                    pattern,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        // Delivered in batches now: a single binding left by an earlier version would deliver
        // each of these events twice.
        for pattern in &self.batched {
            channel
                .queue_unbind(
                    &self.name,
                    &broker.events_exchange(),
                    pattern,
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_as_the_broker_does() {
        for (pattern, key) in [
            ("task.*", "task.completed"),
            ("task.completed", "task.completed"),
            ("test.#", "test.ping"),
            ("test.#", "test"),
            ("test.#", "test.a.b"),
            ("#", "anything.at.all"),
            ("*.batch.#", "events.batch.task-svc"),
        ] {
            assert!(topic_matches(pattern, key), "{pattern} {key}");
        }
        for (pattern, key) in [
            ("task.*", "task"),
            ("task.*", "task.completed.extra"),
            ("task.*", "user.created"),
            ("test.#", "other.test"),
            ("job.finished", "job.finished.batch"),
        ] {
            assert!(!topic_matches(pattern, key), "{pattern} {key}");
        }
    }

    #[test]
    fn delays_double_and_are_capped() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        assert_eq!(policy.delay_after(1), Duration::from_millis(100));
        assert_eq!(policy.delay_after(2), Duration::from_millis(200));
        assert_eq!(policy.delay_after(3), Duration::from_millis(400));
        assert_eq!(policy.delay_after(4), Duration::from_millis(500));
        assert_eq!(policy.delay_after(40), Duration::from_millis(500));
        assert_eq!(
            policy.delays(),
            [100, 200, 400, 500].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn a_single_attempt_needs_no_delay_queue() {
        let policy = RetryPolicy {
            max_attempts: 1,
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        assert!(policy.delays().is_empty());
    }
}
