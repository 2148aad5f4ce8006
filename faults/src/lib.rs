//! The Taskmesh fault suite (`scripts/faults`): runs the platform as separate processes against
//! private PostgreSQL, RabbitMQ and Redis instances, with a fault proxy between each service and
//! each dependency; drives a steady load of jobs and people's tasks through the gateway while it
//! injects one fault at a time; then checks the history (what each client request was told
//! against what exists and what the jobs' receiver saw) for lost, duplicated and unexpected
//! effects, and prints one table row per fault. See `docs/reliability.md`.
//!
//! # Layout
//! - `infra`: the private PostgreSQL, Redis and RabbitMQ.
//! - `proxy`: the TCP fault proxy (latency, resets, refusal).
//! - `stack`: Taskmesh's processes, their settings and proxies.
//! - `receiver`: the HTTP endpoint the jobs call; records calls by idempotency key. Also the
//!   webhook endpoint notify-svc delivers to; records deliveries by `webhook-id`.
//! - `smtp`: the SMTP server notify-svc mails through (the aiosmtpd sink); mails by Message-ID.
//! - `objects`: the S3 server media-svc stores files in (`s3s-fs`); objects by key.
//! - `workload`: the API client, its load and the record of every request.
//! - `check`: the history checker.
//! - `settings`: how hard and how long (`--quick` or a full run).
//! - `suite`: the faults, how each runs, and the report.

pub mod check;
pub mod infra;
pub mod objects;
pub mod proxy;
pub mod receiver;
pub mod settings;
pub mod smtp;
pub mod stack;
pub mod suite;
pub mod workload;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 100 ms until it returns `Some`, or fails naming `what` after `deadline`.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if started.elapsed() > deadline {
            anyhow::bail!("{what}: not within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
