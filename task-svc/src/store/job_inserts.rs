//! Writing new jobs: a batch of rows with their tasks, and the live jobs that hold a
//! `unique_key` already.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain::job::ParsedJob, domain::limit::Limit, domain::task::Task};

/// A job row to write with its (just inserted) task.
pub struct NewJob<'a> {
    pub task: &'a Task,
    pub job: &'a ParsedJob,
    /// A cron template's first tick.
    pub next_run_at: Option<DateTime<Utc>>,
    /// 1 with a first dispatch, 0 for a cron template.
    pub attempt: i32,
    /// The first dispatch's id and its outbox event's id.
    pub dispatch: Option<(Uuid, Uuid)>,
    /// With a limit: `waiting` or `admitted` (`None` until it may start).
    pub limit_state: Option<&'static str>,
}

/// Inserts `rows` in one statement (the runs of cron template `parent` at its tick, if given).
/// Returns the tasks whose job was written; the others were refused: a live job of the owner
/// has the same `unique_key`, or the cron tick has a run already.
pub async fn insert_many(
    conn: &mut PgConnection,
    rows: &[NewJob<'_>],
    parent: Option<(Uuid, DateTime<Utc>)>,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "INSERT INTO jobs (task_id, owner_id, kind, payload, pool, run_at, cron, next_run_at,
                           parent_id, scheduled_for, max_attempts, backoff_base_ms,
                           backoff_max_ms, timeout_ms, unique_key, unique_lock, attempt,
                           dispatch_id, dispatch_event, limit_key, limit_concurrency,
                           limit_per_second, limit_state, limit_since)
         SELECT task_id, owner_id, kind, payload, pool, run_at, cron, next_run_at, $9, $10,
                max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, unique_key, unique_key,
                attempt, dispatch_id, dispatch_event, limit_key, limit_concurrency,
                limit_per_second, limit_state,
                CASE WHEN limit_state = 'waiting' THEN now() END
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[],
                       $6::timestamptz[], $7::text[], $8::timestamptz[], $11::int4[], $12::int8[],
                       $13::int8[], $14::int8[], $15::text[], $16::int4[], $17::uuid[],
                       $18::uuid[], $19::text[], $20::int4[], $21::float8[], $22::text[])
             AS j(task_id, owner_id, kind, payload, pool, run_at, cron, next_run_at,
                  max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, unique_key,
                  attempt, dispatch_id, dispatch_event, limit_key, limit_concurrency,
                  limit_per_second, limit_state)
         ON CONFLICT DO NOTHING
         RETURNING task_id",
    )
    .bind(rows.iter().map(|r| r.task.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.task.owner_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.job.kind.clone()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.job.payload.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.job.pool.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.job.run_at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.job.cron.as_ref().map(|(text, _)| text.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.next_run_at).collect::<Vec<_>>())
    .bind(parent.map(|p| p.0))
    .bind(parent.map(|p| p.1))
    .bind(rows.iter().map(|r| r.job.max_attempts).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.job.backoff_base_ms)
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.job.backoff_max_ms)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.job.timeout_ms).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.job.unique_key.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.dispatch.map(|d| d.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.dispatch.map(|d| d.1))
            .collect::<Vec<_>>(),
    )
    .bind(limits(rows, |l| l.key.clone()))
    .bind(
        limits(rows, |l| l.concurrency)
            .into_iter()
            .map(Option::flatten)
            .collect::<Vec<_>>(),
    )
    .bind(
        limits(rows, |l| l.per_second)
            .into_iter()
            .map(Option::flatten)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.limit_state).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect())
}

/// A column of the rows' limits.
fn limits<T>(rows: &[NewJob<'_>], field: impl Fn(&Limit) -> T) -> Vec<Option<T>> {
    rows.iter()
        .map(|r| r.job.limit.as_ref().map(&field))
        .collect()
}

/// The live jobs holding each (owner, unique key) of `keys`, by key.
pub async fn live_by_keys(
    conn: &mut PgConnection,
    keys: &[(Uuid, String)],
) -> Result<HashMap<(Uuid, String), Uuid>, sqlx::Error> {
    Ok(sqlx::query_as::<_, (Uuid, String, Uuid)>(
        "SELECT j.owner_id, j.unique_lock, j.task_id
           FROM jobs j JOIN unnest($1::uuid[], $2::text[]) AS r(owner_id, unique_lock)
             ON j.owner_id = r.owner_id AND j.unique_lock = r.unique_lock",
    )
    .bind(keys.iter().map(|r| r.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|(owner, key, task)| ((owner, key), task))
    .collect())
}
