//! Calendar feeds (`calendar_feeds`) and the dated tasks they show.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::calendar::{DatedTask, MAX_FEED_TASKS};

/// Makes `hash` the secret of `user`'s feed, replacing any before it.
pub async fn replace(pool: &PgPool, user: Uuid, hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO calendar_feeds (user_id, secret_hash) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, created_at = now()",
    )
    .bind(user)
    .bind(hash)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whose feed has the secret hashed `hash`, if its person is still active.
pub async fn owner(pool: &PgPool, hash: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT f.user_id FROM calendar_feeds f
           LEFT JOIN users u ON u.id = f.user_id
          WHERE f.secret_hash = $1 AND coalesce(u.active AND NOT u.deleted, true)",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await
}

/// The tasks `user` owns or is assigned that have a due date, the latest due first (at most
/// [`MAX_FEED_TASKS`]).
pub async fn dated_tasks(pool: &PgPool, user: Uuid) -> Result<Vec<DatedTask>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, title, description, status, priority, due_at, created_at, updated_at
           FROM tasks
          WHERE due_at IS NOT NULL AND (owner_id = $1 OR assignee_id = $1)
          ORDER BY due_at DESC, id
          LIMIT $2",
    )
    .bind(user)
    .bind(MAX_FEED_TASKS)
    .fetch_all(pool)
    .await
}
