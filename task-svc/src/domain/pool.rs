//! Worker pools as operators see them. Pure: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::TaskError;

/// One pool's jobs (cron templates not counted).
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PoolStats {
    pub pool: String,
    /// Waiting for their `run_at`, a cron tick's turn or a retry's backoff.
    pub waiting: i64,
    /// Handed to the pool, not yet started.
    pub queued: i64,
    pub running: i64,
    /// In the dead-letter list (not purged).
    pub dead: i64,
    /// Completed in the last hour.
    pub completed_last_hour: i64,
    /// An admin paused it: workers take none of its jobs until it is resumed.
    pub paused: bool,
}

/// The runs that ended in one minute.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Minute {
    pub minute: DateTime<Utc>,
    pub succeeded: i64,
    /// Failed, timed out or lost with their worker.
    pub failed: i64,
    /// Median and 95th percentile run time, in seconds.
    pub p50_secs: Option<f64>,
    pub p95_secs: Option<f64>,
}

/// A pool's pause state.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolPause {
    pub pool: String,
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
}

/// Whether members may create `command` jobs in a pool (an admin granted it).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandGrant {
    pub pool: String,
    pub granted: bool,
    pub granted_at: Option<DateTime<Utc>>,
}

/// `pool` must be a pool's name; 404 otherwise.
pub fn checked(pool: &str) -> Result<(), TaskError> {
    if shared::topology::valid_pool(pool) {
        Ok(())
    } else {
        Err(TaskError::NotFound("pool"))
    }
}

/// A pool's runs that ended over a window: the last `hour` or `day`.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PoolWindow {
    pub pool: String,
    /// `hour` or `day`.
    pub window: String,
    pub succeeded: i64,
    /// Failed, timed out or lost with their worker.
    pub failed: i64,
    /// Median and 95th percentile run time, in seconds.
    pub p50_secs: Option<f64>,
    pub p95_secs: Option<f64>,
    /// Median and 95th percentile wait of first attempts, in seconds: from the job's creation
    /// (or its scheduled time) to its start.
    pub wait_p50_secs: Option<f64>,
    pub wait_p95_secs: Option<f64>,
}

/// One run a worker made or is making.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkerRun {
    pub run_id: uuid::Uuid,
    pub task_id: uuid::Uuid,
    pub title: String,
    pub kind: String,
    pub pool: String,
    pub attempt: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `timed_out`, `cancelled`, `interrupted` or `lost`.
    pub outcome: String,
    pub error: Option<String>,
}
