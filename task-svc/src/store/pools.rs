//! Pools: their depth by state, which are paused (`pool_pauses`), and where members may run
//! commands (`pool_command_grants`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::pool::PoolStats;

/// Every pool that has jobs, and every paused pool, with its depth by state.
pub async fn stats(pool: &PgPool) -> Result<Vec<PoolStats>, sqlx::Error> {
    // Pools with jobs, and paused pools that have none.
    sqlx::query_as(
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
    .fetch_all(pool)
    .await
}

/// Jobs per pool and state: each live state (cron templates aside) and dead (not purged), read
/// through the indexes of live and of dead jobs, never the finished ones.
pub async fn depth(pool: &PgPool) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.pool, t.status, count(*) FROM jobs j JOIN tasks t ON t.id = j.task_id
          WHERE j.finished_at IS NULL AND j.cron IS NULL
          GROUP BY 1, 2
         UNION ALL
         SELECT j.pool, 'dead', count(*) FROM tasks t JOIN jobs j ON j.task_id = t.id
          WHERE t.status = 'dead' AND j.dead_purged_at IS NULL
          GROUP BY 1
         LIMIT 10000",
    )
    .fetch_all(pool)
    .await
}

/// Pauses `name` (by `admin`); returns since when it is paused.
pub async fn pause(pool: &PgPool, name: &str, admin: Uuid) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO pool_pauses (pool, paused_by) VALUES ($1, $2)
         ON CONFLICT (pool) DO UPDATE SET pool = EXCLUDED.pool RETURNING paused_at",
    )
    .bind(name)
    .bind(admin)
    .fetch_one(pool)
    .await
}

pub async fn resume(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pool_pauses WHERE pool = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// The paused pools, by name.
pub async fn paused(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT pool FROM pool_pauses ORDER BY pool")
        .fetch_all(pool)
        .await
}

/// Opens pool `name` (an admin named it), if it is not open yet.
pub async fn open(pool: &PgPool, name: &str, admin: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO pools (name, created_by) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(name)
        .bind(admin)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether an admin has opened pool `name`.
pub async fn is_open(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let opened: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pools WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(opened.is_some())
}

/// Lets members create `command` jobs in `pool` (kept as first granted); returns since when.
pub async fn grant_commands(
    pool: &PgPool,
    name: &str,
    admin: Uuid,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO pool_command_grants (pool, granted_by) VALUES ($1, $2)
         ON CONFLICT (pool) DO UPDATE SET pool = EXCLUDED.pool
         RETURNING granted_at",
    )
    .bind(name)
    .bind(admin)
    .fetch_one(pool)
    .await
}

/// Takes the grant back: members' new `command` jobs in `pool` are refused again.
pub async fn revoke_commands(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pool_command_grants WHERE pool = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether members may create `command` jobs in `pool`.
pub async fn commands_granted(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let granted: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM pool_command_grants WHERE pool = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(granted.is_some())
}
