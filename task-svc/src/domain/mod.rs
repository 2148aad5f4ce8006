//! Pure rules and types: no I/O, no async.

pub mod calendar;
pub mod channel;
pub mod comment;
pub mod events;
pub mod job;
pub mod job_search;
pub mod label;
pub mod limit;
pub mod listing;
pub mod person;
pub mod pool;
pub mod priority;
pub mod quota;
pub mod recurrence;
pub mod relation;
pub mod reminder;
pub mod status;
pub mod task;
pub mod workflow;
pub mod workflow_plan;
pub mod workflow_view;
