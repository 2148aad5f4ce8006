//! Routes and their request and response types, thin: no SQL.

pub mod admin;
pub mod calendar;
pub mod channels;
pub mod comments;
pub mod cron;
pub mod internal;
pub mod jobs;
pub mod labels;
pub mod operations;
pub mod people;
pub mod pools;
pub mod related;
pub mod tasks;
pub mod watchers;
pub mod workflows;
