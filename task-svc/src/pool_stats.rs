//! What the operators' views show about the job engine as a whole: each pool's depth by state,
//! its dead letters and whether it is paused (`GET /api/v1/admin/pools`), and the last hour's runs minute by minute,
//! completions, failures and run time (`GET /api/v1/admin/jobs/activity`). Admins only.

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/pools", get(pools))
        .route("/api/v1/admin/jobs/activity", get(activity))
}

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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolList {
    pub items: Vec<PoolStats>,
}

#[utoipa::path(get, path = "/api/v1/admin/pools", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Every pool that has jobs, with its depth by state", body = PoolList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn pools(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<PoolList>, ApiError> {
    identity.require_admin()?;
    // Pools with jobs, and paused pools that have none.
    let items = sqlx::query_as(
        "WITH depth AS (
             SELECT j.pool,
                    count(*) FILTER (WHERE t.status IN ('pending', 'scheduled', 'retrying')) AS waiting,
                    count(*) FILTER (WHERE t.status = 'queued') AS queued,
                    count(*) FILTER (WHERE t.status = 'running') AS running,
                    count(*) FILTER (WHERE t.status = 'dead' AND j.dead_purged_at IS NULL) AS dead,
                    count(*) FILTER (WHERE t.status = 'completed'
                                       AND j.finished_at > now() - interval '1 hour') AS completed_last_hour
               FROM jobs j JOIN tasks t ON t.id = j.task_id
              WHERE j.cron IS NULL
              GROUP BY j.pool)
         SELECT coalesce(d.pool, p.pool) AS pool,
                coalesce(d.waiting, 0) AS waiting, coalesce(d.queued, 0) AS queued,
                coalesce(d.running, 0) AS running, coalesce(d.dead, 0) AS dead,
                coalesce(d.completed_last_hour, 0) AS completed_last_hour,
                p.pool IS NOT NULL AS paused
           FROM depth d FULL JOIN pool_pauses p ON p.pool = d.pool
          ORDER BY 1 LIMIT 1000",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(PoolList { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// How far back, in minutes (1 to 1440, default 60).
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Activity {
    /// Oldest first; a minute without ended runs is absent.
    pub minutes: Vec<Minute>,
}

#[utoipa::path(get, path = "/api/v1/admin/jobs/activity", tag = "jobs", security(("bearer" = [])), params(ActivityQuery),
    responses((status = 200, description = "Runs ended per minute: successes, failures, run time", body = Activity),
        (status = 400, description = "`minutes` out of range", body = ProblemBody),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn activity(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Activity>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let minutes = query.minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "minutes is 1 to 1440",
        ));
    }
    let minutes = sqlx::query_as(
        "SELECT date_trunc('minute', ended_at) AS minute,
                count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE outcome IN ('failed', 'timed_out', 'lost')) AS failed,
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY extract(epoch FROM ended_at - started_at))::float8 AS p50_secs,
                percentile_cont(0.95) WITHIN GROUP
                    (ORDER BY extract(epoch FROM ended_at - started_at))::float8 AS p95_secs
           FROM job_attempts
          WHERE ended_at IS NOT NULL AND ended_at > now() - make_interval(mins => $1)
          GROUP BY 1 ORDER BY 1",
    )
    .bind(minutes as i32)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Activity { minutes }))
}
