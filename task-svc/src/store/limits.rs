//! Per-key limits: a key's row (its settings and pace), locked by each admission, and its jobs
//! in flight and waiting.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::limit::{KeySummary, Limit};

/// A key's settings and the earliest start of its next admitted job.
#[derive(Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub concurrency: Option<i32>,
    pub per_second: Option<f64>,
    pub next_at: DateTime<Utc>,
}

/// Locks `owner`'s key of `limit`, creating it, with `limit`'s settings (a bound the latest
/// job leaves out keeps the key's).
pub async fn lock_with(
    conn: &mut PgConnection,
    owner: Uuid,
    limit: &Limit,
) -> Result<KeyRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO job_limits (owner_id, key, concurrency, per_second) VALUES ($1, $2, $3, $4)
         ON CONFLICT (owner_id, key) DO UPDATE
            SET concurrency = COALESCE(EXCLUDED.concurrency, job_limits.concurrency),
                per_second = COALESCE(EXCLUDED.per_second, job_limits.per_second)
         RETURNING concurrency, per_second, next_at",
    )
    .bind(owner)
    .bind(&limit.key)
    .bind(limit.concurrency)
    .bind(limit.per_second)
    .fetch_one(conn)
    .await
}

/// Locks `owner`'s `key`, if it exists; `skip`: not if another transaction holds it.
pub async fn lock(
    conn: &mut PgConnection,
    owner: Uuid,
    key: &str,
    skip: bool,
) -> Result<Option<KeyRow>, sqlx::Error> {
    let skip = if skip { " SKIP LOCKED" } else { "" };
    sqlx::query_as(&format!(
        "SELECT concurrency, per_second, next_at FROM job_limits
          WHERE owner_id = $1 AND key = $2 FOR UPDATE{skip}"
    ))
    .bind(owner)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// The key's next free start is `next_at`.
pub async fn set_next(
    conn: &mut PgConnection,
    owner: Uuid,
    key: &str,
    next_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE job_limits SET next_at = $3 WHERE owner_id = $1 AND key = $2")
        .bind(owner)
        .bind(key)
        .bind(next_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The key's jobs in flight (admitted, their run not over), and whether any waits.
pub async fn counts(
    conn: &mut PgConnection,
    owner: Uuid,
    key: &str,
) -> Result<(i64, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs
                  WHERE owner_id = $1 AND limit_key = $2 AND limit_state = 'admitted'),
                EXISTS (SELECT 1 FROM jobs
                  WHERE owner_id = $1 AND limit_key = $2 AND limit_state = 'waiting')",
    )
    .bind(owner)
    .bind(key)
    .fetch_one(conn)
    .await
}

/// The key's `n` oldest waiting jobs, locked with their tasks (those another transaction
/// holds, a cancel, are left for the next admission): their task ids and since when they
/// waited.
pub async fn oldest_waiting(
    conn: &mut PgConnection,
    owner: Uuid,
    key: &str,
    n: usize,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.task_id, j.limit_since FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.owner_id = $1 AND j.limit_key = $2 AND j.limit_state = 'waiting'
            AND t.status = 'queued'
          ORDER BY j.limit_since, j.task_id LIMIT $3
            FOR UPDATE SKIP LOCKED",
    )
    .bind(owner)
    .bind(key)
    .bind(n as i64)
    .fetch_all(conn)
    .await
}

/// Jobs `ids` hold one of their key's places.
pub async fn set_admitted(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET limit_state = 'admitted' WHERE task_id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Job `id` waits for its key from now (a released workflow step, a replayed dead job). Returns
/// its owner and limit if it has one.
pub async fn set_waiting(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(Uuid, Limit)>, sqlx::Error> {
    let row: Option<(Uuid, String, Option<i32>, Option<f64>)> = sqlx::query_as(
        "UPDATE jobs SET limit_state = 'waiting', limit_since = now()
          WHERE task_id = $1 AND limit_key IS NOT NULL
         RETURNING owner_id, limit_key, limit_concurrency, limit_per_second",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(owner, key, concurrency, per_second)| {
        (
            owner,
            Limit {
                key,
                concurrency,
                per_second,
            },
        )
    }))
}

/// The keys of `ids` that have a limit.
pub async fn keys_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT owner_id, limit_key FROM jobs
          WHERE task_id = ANY($1) AND limit_key IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Keys with waiting jobs and room to start one (at most 100): what the sweep admits. A key
/// at its concurrency is left to its jobs' reports.
pub async fn with_room(conn: &mut PgConnection) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.owner_id, w.limit_key
           FROM (SELECT DISTINCT owner_id, limit_key FROM jobs WHERE limit_state = 'waiting') w
           JOIN job_limits l ON l.owner_id = w.owner_id AND l.key = w.limit_key
          WHERE l.concurrency IS NULL
             OR l.concurrency > (SELECT count(*) FROM jobs a
                                  WHERE a.owner_id = w.owner_id AND a.limit_key = w.limit_key
                                    AND a.limit_state = 'admitted')
          LIMIT 100",
    )
    .fetch_all(conn)
    .await
}

/// Makes sure `owner`'s key of `limit` exists (a workflow step released with a key no job
/// named before), without waiting for its lock.
pub async fn ensure(
    conn: &mut PgConnection,
    owner: Uuid,
    limit: &Limit,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_limits (owner_id, key, concurrency, per_second) VALUES ($1, $2, $3, $4)
         ON CONFLICT (owner_id, key) DO NOTHING",
    )
    .bind(owner)
    .bind(&limit.key)
    .bind(limit.concurrency)
    .bind(limit.per_second)
    .execute(conn)
    .await?;
    Ok(())
}

/// An owner's keys: settings, jobs in flight and waiting, and the oldest wait's start.
pub async fn summary(conn: &mut PgConnection, owner: Uuid) -> Result<Vec<KeySummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.key, l.concurrency, l.per_second,
                count(j.task_id) FILTER (WHERE j.limit_state = 'admitted') AS in_flight,
                count(j.task_id) FILTER (WHERE j.limit_state = 'waiting') AS waiting,
                min(j.limit_since) FILTER (WHERE j.limit_state = 'waiting') AS waiting_since
           FROM job_limits l
           LEFT JOIN jobs j ON j.owner_id = l.owner_id AND j.limit_key = l.key
                           AND j.limit_state IS NOT NULL
          WHERE l.owner_id = $1
          GROUP BY l.key, l.concurrency, l.per_second
          ORDER BY l.key LIMIT 500",
    )
    .bind(owner)
    .fetch_all(conn)
    .await
}
