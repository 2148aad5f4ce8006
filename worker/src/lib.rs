//! worker: executes automated tasks from the job queues. This first version runs the process
//! shell every later feature needs: health and metrics on its port, and a heartbeat in Redis
//! (`<prefix>workers:<id>`, refreshed every 5 s, expiring after 15 s) so operators can see which
//! workers are alive.
//!
//! # Layout
//! - this file: start-up and the heartbeat.

use std::time::Duration;

use axum::Router;
use redis::aio::ConnectionManager;
use shared::{broker::Broker, health::Readiness, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SERVICE: &str = "worker";

/// How often a worker reports itself, and how long a report stays valid.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// Runs a worker on `listener` (health and metrics) until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let redis = shared::cache::connect(&config.redis, &shutdown).await?;
    let broker = Broker::new(&config.amqp, SERVICE);
    let id = format!(
        "{}-{}",
        hostname(),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let key = format!("{}workers:{id}", config.redis.key_prefix);
    let heartbeat = tokio::spawn(heartbeat(redis.clone(), key, shutdown.clone()));
    tracing::info!(worker_id = %id, "worker started");

    let readiness = Readiness::new(SERVICE).redis(redis).rabbitmq(broker);
    let app = shared::startup::finish_router(Router::new(), readiness);
    shared::http::serve(listener, app, shutdown).await?;
    heartbeat.await?;
    Ok(())
}

async fn heartbeat(mut redis: ConnectionManager, key: String, shutdown: CancellationToken) {
    let started = chrono::Utc::now().to_rfc3339();
    loop {
        let beat: redis::RedisResult<()> = redis::pipe()
            .hset_multiple(
                &key,
                &[
                    ("host", hostname()),
                    ("version", env!("CARGO_PKG_VERSION").to_string()),
                    ("started_at", started.clone()),
                    ("seen_at", chrono::Utc::now().to_rfc3339()),
                ],
            )
            .ignore()
            .expire(&key, HEARTBEAT_TTL.as_secs() as i64)
            .ignore()
            .query_async(&mut redis)
            .await;
        if let Err(err) = beat {
            tracing::warn!(error = %err, "heartbeat failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
        }
    }
    // A stopped worker disappears at once instead of after its TTL.
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&key).query_async(&mut redis).await;
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
