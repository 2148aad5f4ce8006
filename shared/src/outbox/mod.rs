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
//!
//! With `outbox.group_rows` ([`set_grouping`]), a transaction's messages that are due at once
//! share one row (a *group*, [`GROUP_KEY`]):
//! writing, claiming and marking a row costs about the same for one message as for a hundred,
//! and a job's creation writes three. A message that must wait (a reminder, a scheduled run, a
//! retry) keeps a row of its own, which can be moved or dropped by its id. The view
//! `outbox_messages` shows every message, grouped or not, as a row.

mod claim;
pub mod lag;
mod message;
mod relay;
mod settle;
mod write;

pub use message::{
    batch_key, Grouped, GroupedRaw, Pending, Route, GROUP_KEY, GROUP_MAX, NOTIFY_CHANNEL,
    NOTIFY_NOW,
};
pub use relay::{Relay, RoundStats};
pub use write::{
    enqueue, enqueue_all, enqueue_at, enqueue_many, enqueue_routed, set_grouping, wake_now,
};
