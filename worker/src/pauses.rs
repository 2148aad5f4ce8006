//! Paused pools: the set task-svc mirrors into Redis ([`shared::cache::paused_pools_key`]),
//! read every second. A pool's consumer stops while its pool is paused (running jobs finish,
//! held ones go back to the queue) and starts again once it is resumed. While Redis cannot be
//! read the last known set holds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::executor::Executor;

/// How often the paused set is read.
const POLL: Duration = Duration::from_secs(1);

pub type Paused = watch::Receiver<BTreeSet<String>>;

/// Reads the paused set every [`POLL`] into `tx` until `stop`.
pub async fn watch(
    redis: ConnectionManager,
    prefix: String,
    tx: watch::Sender<BTreeSet<String>>,
    stop: CancellationToken,
) {
    let key = shared::cache::paused_pools_key(&prefix);
    shared::background::every(POLL, &stop, || {
        let (mut redis, key, tx) = (redis.clone(), key.clone(), &tx);
        async move {
            let read: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(&key).query_async(&mut redis).await;
            let names: BTreeSet<String> = match read {
                Ok(value) => value
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or_default(),
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the paused pools; keeping the last known");
                    return;
                }
            };
            tx.send_if_modified(|current| {
                let changed = *current != names;
                if changed {
                    tracing::info!(paused = ?names, "paused pools changed");
                    *current = names;
                }
                changed
            });
        }
    })
    .await
}

/// Consumes `pool` while it is not paused, until `shutdown`.
pub async fn serve_pool(
    executor: Arc<Executor>,
    pool: String,
    shutdown: CancellationToken,
    hand_back: CancellationToken,
    mut paused: Paused,
) {
    loop {
        while paused.borrow().contains(&pool) {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = paused.changed() => if changed.is_err() { return },
            }
        }
        let run = shutdown.child_token();
        let consuming = executor
            .clone()
            .consume_pool(pool.clone(), run.clone(), hand_back.clone());
        tokio::pin!(consuming);
        loop {
            tokio::select! {
                _ = &mut consuming => {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    break;
                }
                changed = paused.changed() => {
                    if changed.is_err() || paused.borrow().contains(&pool) {
                        tracing::info!(%pool, "pool paused: taking no more of its jobs");
                        run.cancel();
                    }
                }
            }
        }
    }
}
