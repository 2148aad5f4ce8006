//! RabbitMQ: one connection per process with reconnect, topology declaration, and a publisher
//! that never fires and forgets (publisher confirms + `mandatory`).
//!
//! # Topology
//! - `<ns>.events`: durable topic exchange; the routing key is the event type.
//! - `<ns>.<consumer>`: a consumer's queue (quorum by default) with a delivery limit whose
//!   overflow dead-letters to `<ns>.<consumer>.dlq`.
//! - `<ns>.<consumer>.retry.<delay>ms`: one delay queue per backoff step; its TTL dead-letters
//!   messages back into the consumer's queue through the default exchange.
//! - `<ns>.<consumer>.dlq`: dead letters, with the last error, attempt count and time in headers.

use std::sync::Arc;
use std::time::Duration;

use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions},
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable, LongString, ShortString},
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::backoff::Policy;
use crate::config::{AmqpConfig, QueueType};

/// Marks a message something waits on at once (a workflow step's report, whose next step waits
/// for it): a batching consumer stops lingering for more when it arrives.
pub const HEADER_AWAITED: &str = "x-taskmesh-awaited";

/// Whether a message carries [`HEADER_AWAITED`].
pub fn awaited(headers: Option<&FieldTable>) -> bool {
    matches!(
        headers.and_then(|h| h.inner().get(HEADER_AWAITED)),
        Some(AMQPValue::Boolean(true))
    ) || header_int(headers, HEADER_AWAITED).is_some_and(|v| v != 0)
}

/// Header: attempt number of this delivery (1 for the first).
pub const HEADER_ATTEMPT: &str = "x-taskmesh-attempt";
/// Header: the error of the last failed attempt.
pub const HEADER_LAST_ERROR: &str = "x-taskmesh-last-error";
/// Header: RFC 3339 time the message was dead-lettered.
pub const HEADER_FAILED_AT: &str = "x-taskmesh-failed-at";
/// Header: the queue a dead letter came from (for replay).
pub const HEADER_ORIGIN_QUEUE: &str = "x-taskmesh-origin-queue";

/// The process's way to RabbitMQ. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    url: SecretString,
    connection_name: String,
    config: AmqpConfig,
    connection: Mutex<Option<Arc<Connection>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("connection_name", &self.inner.connection_name)
            .field("namespace", &self.inner.config.namespace)
            .finish()
    }
}

impl Broker {
    /// A broker handle; connects lazily on first use and again after the connection drops.
    pub fn new(config: &AmqpConfig, connection_name: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                url: config.url.clone(),
                connection_name: connection_name.to_string(),
                config: config.clone(),
                connection: Mutex::new(None),
            }),
        }
    }

    /// The service this handle is for (its connection's name).
    pub fn service(&self) -> &str {
        &self.inner.connection_name
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.inner.config
    }

    /// `<ns>.events`, the exchange every event is published to.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.inner.config.namespace)
    }

    /// `<ns>.<name>`, a queue name in this deployment's namespace.
    pub fn queue_name(&self, name: &str) -> String {
        format!("{}.{}", self.inner.config.namespace, name)
    }

    /// The live connection, reconnecting if it dropped.
    pub async fn connection(&self) -> Result<Arc<Connection>, lapin::Error> {
        let mut guard = self.inner.connection.lock().await;
        if let Some(conn) = guard.as_ref() {
            if conn.status().connected() {
                return Ok(conn.clone());
            }
        }
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio)
            .with_connection_name(self.inner.connection_name.clone().into());
        let limit = Duration::from_secs(self.inner.config.connect_timeout_secs.max(1));
        let connecting = Connection::connect(self.inner.url.expose_secret(), properties);
        let conn = match tokio::time::timeout(limit, connecting).await {
            Ok(connected) => Arc::new(connected?),
            Err(_) => {
                let silent = format!("no AMQP handshake within {limit:?}");
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, silent).into());
            }
        };
        tracing::info!(connection = %self.inner.connection_name, "connected to RabbitMQ");
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A new channel on the live connection.
    pub async fn channel(&self) -> Result<Channel, lapin::Error> {
        self.connection().await?.create_channel().await
    }

    /// Closes the connection, if any, at shutdown: the broker sees a clean close instead of a
    /// dropped socket, and no I/O loop outlives the runtime.
    pub async fn close(&self) {
        if let Some(conn) = self.inner.connection.lock().await.take() {
            if conn.status().connected() {
                let _ = conn.close(200, "shutting down").await;
            }
        }
    }

    /// Whether the broker answers now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), lapin::Error> {
        let channel = self.channel().await?;
        channel.close(200, "ping").await
    }

    /// Declares the events exchange. Idempotent.
    pub async fn declare_events_exchange(&self, channel: &Channel) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                &self.events_exchange(),
                ExchangeKind::Topic,
                // Durable: the exchange outlives broker restarts, like the queues bound to it.
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
    }

    /// Arguments for a queue of this deployment's type.
    ///
    /// `dead_letter_to` names the queue that expired, rejected or over-delivered messages move
    /// to (through the default exchange); `ttl` makes it a delay queue; `delivery_limit` is the
    /// quorum queue's poison-message safety net.
    pub fn queue_args(
        &self,
        dead_letter_to: Option<&str>,
        ttl: Option<Duration>,
        delivery_limit: Option<u32>,
    ) -> FieldTable {
        let quorum = self.inner.config.queue_type == QueueType::Quorum;
        let mut args = FieldTable::default();
        let mut put = |key: &str, value: AMQPValue| args.insert(ShortString::from(key), value);
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        put(
            "x-queue-type",
            text(if quorum { "quorum" } else { "classic" }),
        );
        if let Some(target) = dead_letter_to {
            put("x-dead-letter-exchange", text(""));
            put("x-dead-letter-routing-key", text(target));
            if quorum {
                // At-least-once dead-lettering: the message leaves this queue only once the
                // target confirmed it, so a retry or dead letter is never lost in between.
                // The broker requires reject-publish overflow for this strategy.
                put("x-dead-letter-strategy", text("at-least-once"));
                put("x-overflow", text("reject-publish"));
            }
        }
        if let Some(ttl) = ttl {
            put(
                "x-message-ttl",
                AMQPValue::LongLongInt(ttl.as_millis() as i64),
            );
        }
        if let (true, Some(limit)) = (quorum, delivery_limit) {
            put("x-delivery-limit", AMQPValue::LongLongInt(i64::from(limit)));
        }
        if let Some(expires) = self.inner.config.queue_expires_ms {
            put("x-expires", AMQPValue::LongLongInt(i64::from(expires)));
        }
        args
    }
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    pub content_type: String,
    pub headers: FieldTable,
    /// AMQP priority (0–255; the job queues use 0–9); only priority queues look at it.
    pub priority: Option<u8>,
}

impl OutgoingMessage {
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body,
            message_id: None,
            content_type: crate::events::CLOUDEVENTS_JSON.into(),
            headers: FieldTable::default(),
            priority: None,
        }
    }

    pub fn with_header(mut self, key: &str, value: AMQPValue) -> Self {
        self.headers.insert(ShortString::from(key), value);
        self
    }

    fn properties(&self) -> BasicProperties {
        let mut props = BasicProperties::default()
            // Persistent: survives a broker restart once confirmed.
            .with_delivery_mode(2)
            .with_content_type(ShortString::from(self.content_type.as_str()))
            .with_headers(self.headers.clone());
        if let Some(id) = &self.message_id {
            props = props.with_message_id(ShortString::from(id.as_str()));
        }
        if let Some(priority) = self.priority {
            props = props.with_priority(priority);
        }
        props
    }
}

/// Why a publish did not reach a queue.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No queue is bound for this routing key: the broker returned the message.
    #[error("unroutable: no queue bound to {exchange} for {routing_key}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    /// The broker refused responsibility for the message (e.g. a full queue).
    #[error("the broker nacked the message")]
    Nacked,
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
}

/// Publishes with confirms and `mandatory`: `Ok` means a queue holds the message.
#[derive(Clone, Debug)]
pub struct Publisher {
    broker: Broker,
    channel: Arc<Mutex<Option<Channel>>>,
}

impl Publisher {
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            channel: Arc::new(Mutex::new(None)),
        }
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    async fn confirm_channel(&self) -> Result<Channel, lapin::Error> {
        let mut guard = self.channel.lock().await;
        if let Some(channel) = guard.as_ref() {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.broker.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *guard = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes one message and waits for the broker's confirm.
    pub async fn publish(&self, message: &OutgoingMessage) -> Result<(), PublishError> {
        let mut results = self.publish_batch(std::slice::from_ref(message)).await?;
        results.pop().expect("one result per message")
    }

    /// Publishes every message before awaiting any confirm (pipelined), then returns one result
    /// per message in order. `Err` means the channel failed and nothing is known of the batch.
    pub async fn publish_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<Result<(), PublishError>>, lapin::Error> {
        let mut sends: Vec<crate::trace::Span> = match crate::trace::export::enabled() {
            true => messages
                .iter()
                .map(|m| send_span(self.broker.service(), m))
                .collect(),
            false => Vec::new(),
        };
        let outcome = self.publish_batch_inner(messages).await;
        if outcome.is_err() {
            // A failed channel is closed by the broker; the next call opens a new one.
            *self.channel.lock().await = None;
        }
        for (index, span) in sends.iter_mut().enumerate() {
            match &outcome {
                Ok(results) => {
                    if let Some(Err(err)) = results.get(index) {
                        span.error(err.to_string());
                    }
                }
                Err(err) => span.error(err.to_string()),
            }
        }
        outcome
    }

    async fn publish_batch_inner(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<Result<(), PublishError>>, lapin::Error> {
        let channel = self.confirm_channel().await?;
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let confirm = channel
                .basic_publish(
                    &message.exchange,
                    &message.routing_key,
                    // Mandatory: an unroutable message comes back instead of vanishing.
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &message.body,
                    message.properties(),
                )
                .await?;
            pending.push(confirm);
        }
        // The broker returns an unroutable message before acking it, but one ack may cover
        // several messages (`multiple`), and the client then hands the return to whichever of
        // them it settles first. So returns are matched to messages by message id, not by
        // position; only a message without an id falls back to its own confirm.
        let mut outcomes = Vec::with_capacity(pending.len());
        let mut returned_ids = std::collections::HashSet::new();
        for confirm in pending {
            let outcome = confirm.await?;
            if let Confirmation::Ack(Some(returned)) = &outcome {
                if let Some(id) = returned.delivery.properties.message_id() {
                    returned_ids.insert(id.as_str().to_string());
                }
            }
            outcomes.push(outcome);
        }
        let results = outcomes
            .into_iter()
            .zip(messages)
            .map(|(outcome, message)| {
                let unroutable = Err(PublishError::Unroutable {
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                });
                match (outcome, &message.message_id) {
                    (Confirmation::Nack(_), _) => Err(PublishError::Nacked),
                    (_, Some(id)) if returned_ids.contains(id) => unroutable,
                    (_, Some(_)) => Ok(()),
                    (Confirmation::Ack(Some(_)), None) => unroutable,
                    (Confirmation::Ack(None) | Confirmation::NotRequested, None) => Ok(()),
                }
            })
            .collect();
        Ok(results)
    }
}

/// The span of publishing `message` (`send {exchange}`, or the queue it is addressed to through
/// the default exchange): child of the context the event it carries was made in, or a new trace
/// linked to the contexts of the events a batch carries.
fn send_span(service: &str, message: &OutgoingMessage) -> crate::trace::Span {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Carried<'a> {
        #[serde(borrow, default)]
        traceparent: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        data: Option<Batch<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow, default)]
        traceparents: Vec<Option<Cow<'a, str>>>,
        #[serde(borrow, default)]
        events: Vec<Carried<'a>>,
    }
    let carried = serde_json::from_slice::<Carried>(&message.body).ok();
    let parent = carried
        .as_ref()
        .and_then(|c| c.traceparent.as_deref().map(str::to_string))
        .or_else(crate::trace::current);
    let batch = carried.as_ref().and_then(|c| c.data.as_ref());
    let links: Vec<&str> = batch
        .map(|b| {
            let reports = b.traceparents.iter().filter_map(|t| t.as_deref());
            let events = b.events.iter().filter_map(|e| e.traceparent.as_deref());
            reports.chain(events).collect()
        })
        .unwrap_or_default();
    let destination = match message.exchange.is_empty() {
        true => &message.routing_key,
        false => &message.exchange,
    };
    crate::trace::Span::start_from(
        service,
        format!("send {destination}"),
        crate::trace::Kind::Producer,
        parent.as_deref(),
        &links,
        || {
            crate::trace::span::messaging(
                "send",
                destination,
                Some(&message.routing_key),
                message.message_id.as_deref(),
            )
        },
    )
}

/// Runs `session` (one consuming session on a channel) again while it fails (the broker went
/// away), with backoff, until it returns `Ok` (a clean stop) or `shutdown` fires.
pub async fn keep_consuming<F, Fut>(
    broker: &Broker,
    what: &str,
    shutdown: &tokio_util::sync::CancellationToken,
    session: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // The longest gap between tries: a consumer is back within about two seconds of the broker.
    // A session that lasted five seconds was connected: the next outage starts from the first
    // gap.
    const SESSION: Policy = Policy::exponential(Duration::from_millis(200), Duration::from_secs(2))
        .reset_after(Duration::from_secs(5));
    if shutdown.is_cancelled() {
        return;
    }
    let url = broker.config().url.expose_secret();
    let reported = |err: &anyhow::Error| {
        crate::unreachable::report("rabbitmq", url, what, &format!("{err:#}"));
        true
    };
    // Ends with a clean stop (`Ok`) or the shutdown; it never gives up otherwise.
    let _ = crate::backoff::retry(SESSION, shutdown, reported, session).await;
}

/// Reads a header as text.
pub fn header_str(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    match headers?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// Reads a header as an integer, whatever integer type the sender chose.
pub fn header_int(headers: Option<&FieldTable>, key: &str) -> Option<i64> {
    match headers?.inner().get(key)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}
