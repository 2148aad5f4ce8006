//! Workers as their heartbeats in Redis describe them.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A worker process as its heartbeat describes it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    /// `alive`, `dead` (no heartbeat for `jobs.worker_dead_after_secs`) or `stopped` (shut
    /// down cleanly).
    pub state: String,
    #[schema(value_type = Object)]
    pub details: HashMap<String, Value>,
}

/// Workers that reported in the last hour (their heartbeat keys under `key_prefix`), by id:
/// alive, dead (no heartbeat for `dead_after`) or stopped.
pub async fn list(
    mut redis: redis::aio::ConnectionManager,
    key_prefix: &str,
    dead_after: Duration,
) -> Result<Vec<WorkerInfo>, redis::RedisError> {
    let prefix = shared::heartbeat::workers_prefix(key_prefix);
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() > 10_000 {
            break;
        }
    }
    let mut items = Vec::new();
    for key in keys {
        let fields: HashMap<String, String> = match redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
        {
            Ok(fields) => fields,
            Err(err) if err.is_io_error() || err.is_connection_dropped() => return Err(err),
            // Not a heartbeat (a worker writes its own key, and could write anything there):
            // left out, and the list still answers.
            Err(err) => {
                tracing::warn!(%key, error = %err, "not a worker's heartbeat; left out");
                continue;
            }
        };
        if fields.is_empty() {
            continue;
        }
        let seen = shared::heartbeat::seen_at(&fields);
        let state = if fields.contains_key(shared::heartbeat::STOPPED_AT) {
            "stopped"
        } else if seen.is_some_and(|seen| Utc::now() - seen <= dead_after) {
            "alive"
        } else {
            "dead"
        };
        let details = fields
            .into_iter()
            .map(|(k, v)| {
                let value = v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(v));
                (k, value)
            })
            .collect();
        items.push(WorkerInfo {
            id: key.trim_start_matches(&prefix).to_string(),
            state: state.into(),
            details,
        });
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(items)
}
