//! worker: runs automated tasks. A worker process consumes the queues of its pools
//! (`<ns>.jobs.<pool>`), runs each job through the handler registered for its kind, under a
//! concurrency limit and the job's timeout, and reports start, progress and outcome to task-svc
//! as events. It heartbeats in Redis (`<prefix>workers:<id>`) so `GET /api/v1/workers` shows it,
//! and listens for cancels on its own control queue.
//!
//! Embedding: build a [`Worker`], register more kinds with [`Worker::register`], and run it.
//!
//! # Layout
//! - this file: [`Worker`], start-up, the heartbeat, graceful shutdown.
//! - [`handler`]: the [`handler::JobHandler`] trait, the job context and errors, the registry.
//! - [`builtin`]: the built-in kinds `noop`, `sleep`, `http`, `command`.
//! - [`executor`]: consuming, running, reporting and settling dispatches; cancels.
//! - [`holding`]: what a pool consumer holds: its prefetch, and its held dispatches by priority.
//! - [`reports`]: finished reports (batched, confirmed before the ack) and progress.
//! - [`claims`]: one run per dispatch across redeliveries (a claim per dispatch in Redis).
//! - [`pauses`]: pools an admin paused; their consumers stop until resumed.
//! - [`spans`]: a dispatch's spans while traces are exported.

pub mod builtin;
pub mod claims;
pub mod command;
pub mod executor;
pub mod handler;
pub mod holding;
pub mod pauses;
pub mod reports;
pub mod spans;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use redis::aio::ConnectionManager;
use shared::{broker::Broker, health::Readiness, heartbeat::Heartbeat, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::executor::Executor;
use crate::handler::{JobHandler, Registry};

pub const SERVICE: &str = "worker";

/// A worker stays listed this long after its last heartbeat (then shown dead), and this long
/// after a clean stop.
const LISTED_AFTER_DEATH: Duration = Duration::from_secs(3600);
const LISTED_AFTER_STOP: Duration = Duration::from_secs(300);

/// A worker process: its config and the kinds it runs.
pub struct Worker {
    config: Config,
    registry: Registry,
}

impl Worker {
    /// A worker with the built-in kinds its config allows.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let registry = builtin::registry(&config.workers)?;
        Ok(Self { config, registry })
    }

    /// Adds (or replaces) the handler of `kind`.
    pub fn register(mut self, kind: &str, handler: impl JobHandler) -> Self {
        self.registry.register(kind, handler);
        self
    }

    /// Runs until `shutdown`, serving health and metrics on `listener`.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let config = self.config;
        for pool in &config.workers.pools {
            if !shared::topology::valid_pool(pool) {
                anyhow::bail!("workers.pools: {pool:?} is not a valid pool name (a-z 0-9 _ -)");
            }
        }
        // Never shown the shutdown signal directly: the pools stop taking work at once, the
        // health endpoint and heartbeat last until the running jobs are settled.
        let serving = CancellationToken::new();
        let redis = shared::cache::connect(&config.redis, &shutdown).await?;
        let broker = Broker::new(&config.amqp, SERVICE);
        let id = if config.workers.id.is_empty() {
            format!(
                "{}-{}",
                hostname(),
                &Uuid::new_v4().simple().to_string()[..8]
            )
        } else {
            config.workers.id.clone()
        };
        let executor = Arc::new(Executor::new(
            id.clone(),
            config.workers.clone(),
            self.registry,
            broker.clone(),
            redis.clone(),
            config.redis.key_prefix.clone(),
        ));
        let key = shared::heartbeat::worker_key(&config.redis.key_prefix, &id);

        let cancels = tokio::spawn(executor.clone().listen_for_cancels(serving.clone()));
        let hand_back = CancellationToken::new();
        let (paused_tx, paused) = tokio::sync::watch::channel(Default::default());
        let watching = tokio::spawn(pauses::watch(
            redis.clone(),
            config.redis.key_prefix.clone(),
            paused_tx,
            serving.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat(
            redis.clone(),
            key,
            executor.clone(),
            paused.clone(),
            serving.clone(),
        ));
        let mut pools = tokio::task::JoinSet::new();
        for pool in &config.workers.pools {
            pools.spawn(pauses::serve_pool(
                executor.clone(),
                pool.clone(),
                shutdown.clone(),
                hand_back.clone(),
                paused.clone(),
            ));
        }
        tracing::info!(worker_id = %id, pools = ?config.workers.pools, concurrency = config.workers.concurrency, "worker started");

        let readiness = Readiness::new(SERVICE)
            .redis(redis)
            .rabbitmq(broker.clone());
        let app = shared::startup::finish_router(Router::new(), readiness);
        let server = tokio::spawn(shared::http::serve(listener, app, serving.clone()));

        shutdown.cancelled().await;
        let grace = Duration::from_secs(config.workers.shutdown_grace_secs);
        tracing::info!(
            in_flight = executor.stats.in_flight.load(Ordering::Relaxed),
            ?grace,
            "worker stopping: no new jobs; running ones may finish"
        );
        let hand_back_later = {
            let hand_back = hand_back.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                hand_back.cancel();
            })
        };
        while pools.join_next().await.is_some() {}
        hand_back_later.abort();
        serving.cancel();
        let _ = cancels.await;
        let _ = watching.await;
        heartbeat.await?;
        server.await??;
        broker.close().await;
        tracing::info!(worker_id = %id, "worker stopped");
        Ok(())
    }
}

/// Runs a worker with the built-in kinds on `listener` (health and metrics) until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    Worker::new(config)?.run(listener, shutdown).await
}

async fn heartbeat(
    redis: ConnectionManager,
    key: String,
    executor: Arc<Executor>,
    paused: pauses::Paused,
    stop: CancellationToken,
) {
    let started_at = chrono::Utc::now();
    let every = Duration::from_secs(executor.config.heartbeat_secs.max(1));
    shared::background::every(every, &stop, || {
        let stats = &executor.stats;
        let config = &executor.config;
        let beat = Heartbeat {
            id: executor.id.clone(),
            pools: config.pools.clone(),
            host: hostname(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            seen_at: chrono::Utc::now(),
            concurrency: config.concurrency,
            in_flight: stats.in_flight.load(Ordering::Relaxed) as u64,
            processed: stats.processed.load(Ordering::Relaxed),
            failed: stats.failed.load(Ordering::Relaxed),
            paused: (config.pools.iter())
                .filter(|p| paused.borrow().contains(*p))
                .cloned()
                .collect(),
        };
        let (mut redis, key) = (redis.clone(), key.clone());
        async move {
            let written: redis::RedisResult<()> = redis::pipe()
                .hset_multiple(&key, &beat.fields())
                .ignore()
                .expire(&key, LISTED_AFTER_DEATH.as_secs() as i64)
                .ignore()
                .query_async(&mut redis)
                .await;
            if let Err(err) = written {
                tracing::warn!(error = %err, "heartbeat failed");
            }
        }
    })
    .await;
    let mut redis = redis;
    // A cleanly stopped worker is listed as stopped for a while, then disappears.
    let _: redis::RedisResult<()> = redis::pipe()
        .hset(
            &key,
            shared::heartbeat::STOPPED_AT,
            chrono::Utc::now().to_rfc3339(),
        )
        .ignore()
        .expire(&key, LISTED_AFTER_STOP.as_secs() as i64)
        .ignore()
        .query_async(&mut redis)
        .await;
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
