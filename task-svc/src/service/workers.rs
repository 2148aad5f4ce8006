//! Workers as operators see them: each one's heartbeat (from Redis), and one worker's runs in
//! flight and latest ended ones (from the database).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{
    domain::pool::WorkerRun,
    error::TaskError,
    infra::workers::{self, WorkerInfo},
    store, AppState,
};

/// One worker: its heartbeat (absent when it has not reported in the last hour), the runs it
/// has open and the last 20 it ended in the last day.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerDetail {
    pub id: String,
    pub worker: Option<WorkerInfo>,
    pub in_flight: Vec<WorkerRun>,
    pub recent: Vec<WorkerRun>,
}

/// Workers that reported in the last hour; 503 naming Redis when it is down.
pub async fn list(state: &AppState) -> Result<Vec<WorkerInfo>, TaskError> {
    let dead_after = chrono::Duration::seconds(state.config.jobs.worker_dead_after_secs as i64);
    workers::list(
        state.cache.redis.clone(),
        &state.config.redis.key_prefix,
        dead_after,
    )
    .await
    .map_err(|err| {
        tracing::warn!(error = %err, "cannot list workers");
        TaskError::Unavailable("redis")
    })
}

/// Workers alive per pool they serve (a worker serving two pools counts for each).
pub async fn alive_per_pool(state: &AppState) -> Result<HashMap<String, i64>, TaskError> {
    let mut pools = HashMap::new();
    for worker in list(state)
        .await?
        .into_iter()
        .filter(|w| w.state == "alive")
    {
        let served = worker
            .details
            .get("pools")
            .and_then(|p| p.as_str())
            .unwrap_or("");
        for pool in served.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            *pools.entry(pool.to_string()).or_insert(0) += 1;
        }
    }
    Ok(pools)
}

/// Worker `id`; 404 when it neither reported in the last hour nor ran anything in the last day.
pub async fn detail(state: &AppState, id: &str) -> Result<WorkerDetail, TaskError> {
    if id.is_empty() || id.len() > 200 {
        return Err(TaskError::NotFound("worker"));
    }
    let worker = list(state).await?.into_iter().find(|w| w.id == id);
    let (in_flight, recent) = store::runs::of_worker(&state.pool, id, 20).await?;
    if worker.is_none() && in_flight.is_empty() && recent.is_empty() {
        return Err(TaskError::NotFound("worker"));
    }
    Ok(WorkerDetail {
        id: id.to_string(),
        worker,
        in_flight,
        recent,
    })
}
