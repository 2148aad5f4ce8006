//! task-svc's read model of users (`users`): who exists, their name, whether they are active.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain::task::Task, store::tasks::COLUMNS};

/// Records a user as `user.created` or `user.updated` describes them.
pub async fn upsert(
    conn: &mut PgConnection,
    id: Uuid,
    display_name: &str,
    active: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, display_name, active) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE
            SET display_name = EXCLUDED.display_name, active = EXCLUDED.active,
                updated_at = now()",
    )
    .bind(id)
    .bind(display_name)
    .bind(active)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a new user; one already known keeps its `active` flag and takes the new name.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    display_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, display_name, active) VALUES ($1, $2, true)
         ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name",
    )
    .bind(id)
    .bind(display_name)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The tasks assigned to user `id`, locked.
pub async fn assigned_tasks(conn: &mut PgConnection, id: Uuid) -> Result<Vec<Task>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE assignee_id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_all(conn)
    .await
}
