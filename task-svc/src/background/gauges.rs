//! The job engine's state as Prometheus gauges, every [`EVERY`]: jobs per pool in each live
//! state and dead (`taskmesh_jobs{pool, state}`), and workers with a fresh heartbeat per pool
//! they serve (`taskmesh_workers_alive{pool}`). A series reported before and gone now reads 0,
//! so an alert on it ends. Every replica reports the same numbers (read from the database and
//! Redis): the alert rules take their `max`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::AppState;

/// How often the gauges are read again.
pub const EVERY: Duration = Duration::from_secs(15);

/// The series set last time, to zero those that are gone.
#[derive(Default)]
struct Seen {
    jobs: HashSet<(String, String)>,
    workers: HashSet<String>,
}

/// Sets the gauges every [`EVERY`] until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    shared::background::every(EVERY, &shutdown, || {
        let (state, seen) = (state.clone(), seen.clone());
        async move { round(&state, &seen).await }
    })
    .await
}

async fn round(state: &AppState, seen: &Mutex<Seen>) {
    let depth = crate::store::pools::depth(&state.pool).await;
    let alive = crate::service::workers::alive_per_pool(state).await;
    let mut seen = seen.lock().expect("never poisoned");
    match depth {
        Ok(rows) => {
            let now: HashSet<(String, String)> = rows
                .iter()
                .map(|(p, s, _)| (p.clone(), s.clone()))
                .collect();
            for (pool, state) in seen.jobs.difference(&now) {
                metrics::gauge!("taskmesh_jobs", "pool" => pool.clone(), "state" => state.clone())
                    .set(0.0);
            }
            for (pool, state, count) in rows {
                metrics::gauge!("taskmesh_jobs", "pool" => pool, "state" => state)
                    .set(count as f64);
            }
            seen.jobs = now;
        }
        Err(err) => tracing::debug!(error = %err, "cannot read the jobs' depth for the gauges"),
    }
    match alive {
        Ok(pools) => {
            let now: HashSet<String> = pools.keys().cloned().collect();
            for pool in seen.workers.difference(&now) {
                metrics::gauge!("taskmesh_workers_alive", "pool" => pool.clone()).set(0.0);
            }
            for (pool, count) in pools {
                metrics::gauge!("taskmesh_workers_alive", "pool" => pool).set(count as f64);
            }
            seen.workers = now;
        }
        Err(err) => tracing::debug!(error = %err, "cannot read the workers for the gauges"),
    }
}
