//! SQL, and only here: each function returns `sqlx::Error`.

pub mod calendar;
pub mod channels;
pub mod comments;
pub mod cron;
pub mod dead;
pub mod job_inserts;
pub mod job_search;
pub mod jobs;
pub mod labels;
pub mod limits;
pub mod people;
pub mod pools;
pub mod priority;
pub mod relations;
pub mod reports;
pub mod runs;
pub mod tasks;
pub mod users;
pub mod watchers;
pub mod workflows;
