//! Comments on tasks (`task_comments`) and who each has named (`task_comment_mentions`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::comment::{Comment, MAX_LISTED};

const SELECT: &str =
    "SELECT c.id, c.task_id, c.author_id, coalesce(u.display_name, '') AS author_name,
                             c.body, c.created_at, c.edited_at
                        FROM task_comments c LEFT JOIN users u ON u.id = c.author_id";

/// Task `task_id`'s comments, oldest first, at most [`MAX_LISTED`].
pub async fn list(conn: &mut PgConnection, task_id: Uuid) -> Result<Vec<Comment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE c.task_id = $1 ORDER BY c.created_at, c.id LIMIT $2"
    ))
    .bind(task_id)
    .bind(MAX_LISTED)
    .fetch_all(conn)
    .await
}

/// Comment `id` on task `task_id`, locked when `lock`.
pub async fn find(
    conn: &mut PgConnection,
    task_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<Comment>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE OF c" } else { "" };
    sqlx::query_as(&format!(
        "{SELECT} WHERE c.task_id = $1 AND c.id = $2{lock}"
    ))
    .bind(task_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    task_id: Uuid,
    author_id: Uuid,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO task_comments (id, task_id, author_id, body) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(task_id)
        .bind(author_id)
        .bind(body)
        .execute(conn)
        .await
        .map(drop)
}

pub async fn edit(conn: &mut PgConnection, id: Uuid, body: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE task_comments SET body = $2, edited_at = now() WHERE id = $1")
        .bind(id)
        .bind(body)
        .execute(conn)
        .await
        .map(drop)
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM task_comments WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(drop)
}

/// Records that comment `id` named `users`; answers those it had not named before.
pub async fn add_mentions(
    conn: &mut PgConnection,
    id: Uuid,
    users: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO task_comment_mentions (comment_id, user_id)
         SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING user_id",
    )
    .bind(id)
    .bind(users)
    .fetch_all(conn)
    .await
}

/// The names of `users` (active, known to task-svc), for finding who a comment names.
pub async fn names(
    conn: &mut PgConnection,
    users: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, display_name FROM users WHERE id = ANY($1) AND active AND NOT deleted",
    )
    .bind(users)
    .fetch_all(conn)
    .await
}
