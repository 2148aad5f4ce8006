//! What the outbox stores: messages, their routes, and the rows that group them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::events::{CloudEvent, EventPayload};

/// The channel the outbox insert trigger notifies.
pub const NOTIFY_CHANNEL: &str = "taskmesh_outbox";

/// The payload of a notification on [`NOTIFY_CHANNEL`] that asks the relay to publish at
/// once, without waiting for more commits ([`crate::outbox::wake_now`]).
pub const NOTIFY_NOW: &str = "now";

/// The routing key of a group row: its payload is an array of [`Grouped`] messages, each
/// published on its own routing key. No event type starts with `outbox.`.
pub const GROUP_KEY: &str = "outbox.group";

/// The most messages one group row carries (a bulk creation's are split into several rows, so
/// no relay round grows past its batch by more than this).
pub const GROUP_MAX: usize = 256;

/// One message of a group row, as stored in its payload.
#[derive(Debug, Serialize, Deserialize)]
pub struct Grouped<E> {
    /// The event's id, also the message's AMQP message-id.
    pub id: Uuid,
    pub routing_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The whole CloudEvent.
    pub event: E,
}

/// A group message as the relay reads it: the event stays the text it was stored as.
pub type GroupedRaw = Grouped<Box<RawValue>>;

/// An event ready for the outbox with its route, for `enqueue_all`.
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

/// Whether an outbox row is a command that must reach its queue (a job dispatch or dead
/// letter) rather than an event nobody may be listening for: unroutable, it is retried with
/// backoff instead of being marked, so a job is never dropped while its pool's queue is missing.
pub(super) fn must_route(routing_key: &str) -> bool {
    routing_key.starts_with("job.dispatch.")
        || routing_key.starts_with("job.dead.")
        || routing_key.starts_with("notify.")
}

/// The routing key of `service`'s batches: each relay round's events in one message, for the
/// platform's own consumers ([`crate::consumer::QueueSpec::batches_of`]).
pub fn batch_key(service: &str) -> String {
    format!("events.batch.{service}")
}
