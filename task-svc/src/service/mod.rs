//! What task-svc does, over `domain`, `store` and `infra`.

pub mod calendar;
pub mod channels;
pub mod commands;
pub mod comments;
pub mod create;
pub mod cron;
pub mod dead;
pub mod deletion;
pub mod dispatch;
pub mod group_commit;
pub mod job_reports;
pub mod jobs;
pub mod labels;
pub mod limits;
pub mod operations;
pub mod people;
pub mod pools;
pub mod priority;
pub mod query;
pub mod quotas;
pub mod stop;
pub mod tasks;
pub mod users;
pub mod workflows;
