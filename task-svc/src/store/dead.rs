//! The dead list: jobs whose attempts are used up, until an admin replays or purges them.

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{job::DeadJob, job_search::JobFilter, task::Task};

/// Locks the dead, unpurged jobs `selection` names (at most 1000).
pub async fn select_dead(
    conn: &mut PgConnection,
    pool: Option<&str>,
    task_ids: Option<&[Uuid]>,
) -> Result<Vec<Task>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM tasks t
          WHERE t.status = 'dead'
            AND EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = t.id AND j.dead_purged_at IS NULL
                          AND ($1::text IS NULL OR j.pool = $1))
            AND ($2::uuid[] IS NULL OR t.id = ANY($2))
          ORDER BY t.updated_at LIMIT 1000 FOR UPDATE",
        crate::store::tasks::COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(pool)
    .bind(task_ids)
    .fetch_all(conn)
    .await
}

/// Which of `ids` are dead and still on the dead list (not replayed or purged).
pub async fn still_dead(pool: &PgPool, ids: &[Uuid]) -> Result<HashSet<Uuid>, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "SELECT t.id FROM tasks t JOIN jobs j ON j.task_id = t.id
          WHERE t.id = ANY($1) AND t.status = 'dead' AND j.dead_purged_at IS NULL",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect())
}

/// Dead jobs not purged matching `filter`'s pool, kind and error text, newest first.
pub async fn dead_list(
    pool: &PgPool,
    filter: &JobFilter,
    limit: i64,
) -> Result<Vec<DeadJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id AS task_id, t.owner_id, t.title, j.kind, j.pool, j.attempt, j.max_attempts,
                j.last_error, j.finished_at AS died_at
           FROM tasks t JOIN jobs j ON j.task_id = t.id
          WHERE t.status = 'dead' AND j.dead_purged_at IS NULL
            AND ($1::text IS NULL OR j.pool = $1)
            AND ($2::text IS NULL OR j.kind = $2)
            AND ($3::text IS NULL OR j.last_error ILIKE $3)
          ORDER BY j.finished_at DESC NULLS LAST LIMIT $4",
    )
    .bind(filter.pool.as_deref())
    .bind(filter.kind.as_deref())
    .bind(filter.error_like.as_deref())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Clears a dead job's outcome for a replay (and takes its unique key again). Returns its pool.
pub async fn reset_for_replay(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE jobs SET finished_at = NULL, last_error = NULL, result = NULL,
                unique_lock = unique_key, progress = NULL, limit_state = NULL,
                limit_since = NULL
          WHERE task_id = $1 RETURNING pool",
    )
    .bind(task_id)
    .fetch_one(conn)
    .await
}

/// Takes jobs off the dead list. Returns their pools, once each.
pub async fn mark_purged(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashSet<String>, sqlx::Error> {
    let pools: Vec<String> = sqlx::query_scalar(
        "UPDATE jobs SET dead_purged_at = now() WHERE task_id = ANY($1) RETURNING pool",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(pools.into_iter().collect())
}
