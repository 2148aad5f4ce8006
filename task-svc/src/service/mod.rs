//! What task-svc does, over `domain`, `store` and `infra`.

pub mod cron;
pub mod job_reports;
pub mod jobs;
