//! Cron templates: which are due and what they run.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{job::ParsedJob, limit::Limit};

/// Due templates (at most 100), locked, skipping those another replica holds: each with its
/// cron expression and the tick that is due.
pub async fn due(
    conn: &mut PgConnection,
) -> Result<Vec<(Uuid, String, DateTime<Utc>)>, sqlx::Error> {
    // The templates are found through their own index and only then their task's status is
    // read: as a join, the planner started from the tasks that are 'scheduled' (every job
    // waiting for its run_at is), a visit per waiting job every round.
    sqlx::query_as(
        "SELECT j.task_id, j.cron, j.next_run_at FROM jobs j
          WHERE j.cron IS NOT NULL AND j.next_run_at <= now()
            AND (SELECT t.status FROM tasks t WHERE t.id = j.task_id) = 'scheduled'
          ORDER BY j.next_run_at LIMIT 100
            FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(conn)
    .await
}

/// What a template's runs (a cron template's, a map step's) run: its job as a new run's,
/// its limit included.
pub async fn template_job(
    conn: &mut PgConnection,
    template_id: Uuid,
) -> Result<ParsedJob, sqlx::Error> {
    type Row = (
        String,
        Value,
        String,
        i32,
        i64,
        i64,
        i64,
        Option<String>,
        Option<i32>,
        Option<f64>,
    );
    let (
        kind,
        payload,
        pool,
        max_attempts,
        backoff_base_ms,
        backoff_max_ms,
        timeout_ms,
        key,
        concurrency,
        per_second,
    ): Row = sqlx::query_as(
        "SELECT kind, payload, pool, max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms,
                limit_key, limit_concurrency, limit_per_second
           FROM jobs WHERE task_id = $1",
    )
    .bind(template_id)
    .fetch_one(conn)
    .await?;
    let limit = key.map(|key| Limit {
        key,
        concurrency,
        per_second,
    });
    Ok(ParsedJob {
        kind,
        payload,
        pool,
        run_at: None,
        cron: None,
        max_attempts,
        backoff_base_ms,
        backoff_max_ms,
        timeout_ms,
        unique_key: None,
        held: false,
        step: None,
        limit,
    })
}
