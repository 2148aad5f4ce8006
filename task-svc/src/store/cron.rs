//! Cron templates: which are due, what they run, and the operator's list of them.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{
    job::{CronTemplateRow, ParsedJob},
    limit::Limit,
};

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
          WHERE j.cron IS NOT NULL AND j.next_run_at <= now() AND j.cron_paused_at IS NULL
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

/// Every live template (its task `scheduled`), or only template `only`, the next due first, at
/// most 500.
pub async fn templates(
    conn: &mut PgConnection,
    only: Option<Uuid>,
) -> Result<Vec<CronTemplateRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.task_id, t.title, t.owner_id, j.kind, j.pool, j.cron, j.cron_paused_at AS paused_at,
                (SELECT count(*) FROM jobs r WHERE r.parent_id = j.task_id) AS runs
           FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.cron IS NOT NULL AND t.status = 'scheduled'
            AND ($1::uuid IS NULL OR j.task_id = $1)
          ORDER BY j.cron_paused_at IS NOT NULL, j.next_run_at, j.task_id LIMIT 500",
    )
    .bind(only)
    .fetch_all(conn)
    .await
}

/// The last five runs of each of `templates`: template, run, tick, status; newest first.
pub async fn last_runs(
    conn: &mut PgConnection,
    templates: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, DateTime<Utc>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT parent_id, task_id, scheduled_for, status FROM (
             SELECT r.parent_id, r.task_id, r.scheduled_for, t.status,
                    row_number() OVER (PARTITION BY r.parent_id ORDER BY r.scheduled_for DESC) AS n
               FROM jobs r JOIN tasks t ON t.id = r.task_id
              WHERE r.parent_id = ANY($1) AND r.scheduled_for IS NOT NULL) x
          WHERE n <= 5 ORDER BY parent_id, scheduled_for DESC",
    )
    .bind(templates)
    .fetch_all(conn)
    .await
}

/// Template `id`, locked: its cron expression and whether it is paused; `None` when it is not
/// a live template.
pub async fn lock_template(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.cron, j.cron_paused_at IS NOT NULL FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.task_id = $1 AND j.cron IS NOT NULL AND t.status = 'scheduled'
            FOR UPDATE OF j",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Pauses template `id` (no tick runs) or resumes it with its next tick at `next`.
pub async fn set_paused(
    conn: &mut PgConnection,
    id: Uuid,
    paused: bool,
    next: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET cron_paused_at = CASE WHEN $2 THEN now() END,
                next_run_at = CASE WHEN $2 THEN next_run_at ELSE $3 END
          WHERE task_id = $1",
    )
    .bind(id)
    .bind(paused)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}

/// Template `id` runs on schedule `cron` from now on, its next tick at `next`.
pub async fn set_schedule(
    conn: &mut PgConnection,
    id: Uuid,
    cron: &str,
    next: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET cron = $2, next_run_at = $3 WHERE task_id = $1")
        .bind(id)
        .bind(cron)
        .bind(next)
        .execute(conn)
        .await?;
    Ok(())
}
