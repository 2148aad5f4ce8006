//! Subtasks (`tasks.parent_id`) and relations between tasks (`task_relations`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{relation::Stored, task::Task},
    store::tasks::COLUMNS,
};

/// Most subtasks or relations a task lists.
pub const MAX_LISTED: i64 = 500;

/// Tasks `$2` may see (`$3`: they are an admin), as a condition on `tasks t`.
const VISIBLE: &str = "($3 OR t.owner_id = $2 OR t.assignee_id = $2
     OR t.channel_id IN (SELECT channel_id FROM channel_members WHERE user_id = $2))";

/// Whether `task` is `ancestor` or one of its subtasks, at any depth (a cycle's test).
pub async fn descends_from(
    conn: &mut PgConnection,
    task: Uuid,
    ancestor: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE up(id, depth) AS (
             SELECT $1::uuid, 0
             UNION ALL
             SELECT t.parent_id, up.depth + 1 FROM tasks t JOIN up ON t.id = up.id
              WHERE t.parent_id IS NOT NULL AND up.depth < 1000
         )
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
    )
    .bind(task)
    .bind(ancestor)
    .fetch_one(conn)
    .await
}

/// The subtasks of `parent` that `user` may see, oldest first, and how many of all its
/// subtasks there are and are done.
pub async fn children(
    conn: &mut PgConnection,
    parent: Uuid,
    user: Uuid,
    admin: bool,
) -> Result<(Vec<Task>, i64, i64), sqlx::Error> {
    let items = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks t WHERE parent_id = $1 AND {VISIBLE}
          ORDER BY created_at, id LIMIT {MAX_LISTED}"
    ))
    .bind(parent)
    .bind(user)
    .bind(admin)
    .fetch_all(&mut *conn)
    .await?;
    let (done, total): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM tasks WHERE parent_id = $1",
    )
    .bind(parent)
    .fetch_one(conn)
    .await?;
    Ok((items, done, total))
}

/// A related task as a relation's side shows it.
#[derive(Debug, sqlx::FromRow)]
pub struct Related {
    pub task_id: Uuid,
    pub other_id: Uuid,
    pub kind: String,
    pub title: String,
    pub status: String,
}

/// The relations of `task` whose other side `user` may see, oldest first.
pub async fn of(
    conn: &mut PgConnection,
    task: Uuid,
    user: Uuid,
    admin: bool,
) -> Result<Vec<Related>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT r.task_id, r.other_id, r.kind, t.title, t.status
           FROM task_relations r
           JOIN tasks t ON t.id = CASE WHEN r.task_id = $1 THEN r.other_id ELSE r.task_id END
          WHERE (r.task_id = $1 OR r.other_id = $1) AND {VISIBLE}
          ORDER BY r.created_at LIMIT {MAX_LISTED}"
    ))
    .bind(task)
    .bind(user)
    .bind(admin)
    .fetch_all(conn)
    .await
}

/// How many relations `task` has, on either side.
pub async fn count(conn: &mut PgConnection, task: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM task_relations WHERE task_id = $1 OR other_id = $1")
        .bind(task)
        .fetch_one(conn)
        .await
}

/// Records `relation` by `actor`; `false` when it was already there.
pub async fn insert(
    conn: &mut PgConnection,
    relation: &Stored,
    actor: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO task_relations (task_id, other_id, kind, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(relation.task_id)
    .bind(relation.other_id)
    .bind(relation.kind)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes `relation`; `false` when there was none.
pub async fn delete(conn: &mut PgConnection, relation: &Stored) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM task_relations WHERE task_id = $1 AND other_id = $2 AND kind = $3",
    )
    .bind(relation.task_id)
    .bind(relation.other_id)
    .bind(relation.kind)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
