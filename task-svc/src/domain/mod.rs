//! Pure rules and types: no I/O, no async.

pub mod events;
pub mod job;
pub mod listing;
pub mod reminder;
pub mod status;
pub mod task;
