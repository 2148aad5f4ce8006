//! task-svc's read model of users (`users`): who exists, their name, whether they are active,
//! their role; each row as the latest `user.*` event applied to it says (decision 40).

use shared::identity::Role;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain::task::Task, store::tasks::COLUMNS};

/// Where a row stands: the event last applied to it (none for rows older than the column).
/// An event older than it, or any after the user's deletion, changes nothing.
const NEWER: &str = "WHERE NOT users.deleted
         AND (users.event_id IS NULL OR users.event_id < EXCLUDED.event_id)";

/// Records a user as `user.updated` (event `event_id`) describes them.
pub async fn upsert(
    conn: &mut PgConnection,
    event_id: Uuid,
    id: Uuid,
    display_name: &str,
    active: bool,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO users (id, display_name, active, role, event_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE
            SET display_name = EXCLUDED.display_name, active = EXCLUDED.active,
                role = EXCLUDED.role, event_id = EXCLUDED.event_id, updated_at = now()
         {NEWER}"
    ))
    .bind(id)
    .bind(display_name)
    .bind(active)
    .bind(role)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a new user (`user.created`, event `event_id`); one already known from a later event
/// keeps what that event said.
pub async fn insert(
    conn: &mut PgConnection,
    event_id: Uuid,
    id: Uuid,
    display_name: &str,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO users (id, display_name, active, role, event_id) VALUES ($1, $2, true, $3, $4)
         ON CONFLICT (id) DO UPDATE
            SET display_name = EXCLUDED.display_name, role = EXCLUDED.role,
                event_id = EXCLUDED.event_id
         {NEWER}"
    ))
    .bind(id)
    .bind(display_name)
    .bind(role)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether user `id` is active (a deleted one is not) and the role they hold now (`None`: not
/// heard of since roles were kept), or `None` if task-svc has not heard of them.
pub async fn standing(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(bool, Option<Role>)>, sqlx::Error> {
    sqlx::query_as("SELECT active AND NOT deleted, role FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A deleted user stays as a tombstone: unknown to assignments, refused every access.
pub async fn delete(conn: &mut PgConnection, event_id: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, display_name, active, deleted, event_id) VALUES ($1, '', false, true, $2)
         ON CONFLICT (id) DO UPDATE SET active = false, deleted = true, event_id = EXCLUDED.event_id,
            updated_at = now()",
    )
    .bind(id)
    .bind(event_id)
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
