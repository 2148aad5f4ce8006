//! Who follows a task (`task_watchers`): its owner and assignee by default, commenters and who
//! chose to, less who unfollowed; only while they may still see it.

use sqlx::PgConnection;
use uuid::Uuid;

/// Everyone who follows task `task`, may see it and is active (as far as task-svc has heard),
/// sorted.
pub async fn followers(conn: &mut PgConnection, task: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH t AS (SELECT owner_id, assignee_id, channel_id FROM tasks WHERE id = $1),
         wanted AS (
             SELECT owner_id AS user_id FROM t
             UNION SELECT assignee_id FROM t WHERE assignee_id IS NOT NULL
             UNION SELECT user_id FROM task_watchers WHERE task_id = $1 AND following
         )
         SELECT w.user_id FROM wanted w CROSS JOIN t
           LEFT JOIN users u ON u.id = w.user_id
          WHERE coalesce(u.active AND NOT u.deleted, true)
            AND NOT EXISTS (SELECT 1 FROM task_watchers x
                             WHERE x.task_id = $1 AND x.user_id = w.user_id AND NOT x.following)
            AND (w.user_id = t.owner_id OR w.user_id = t.assignee_id OR coalesce(u.role = 'admin', false)
                 OR t.channel_id IN (SELECT channel_id FROM channel_members
                                      WHERE user_id = w.user_id))
          ORDER BY w.user_id",
    )
    .bind(task)
    .fetch_all(conn)
    .await
}

/// Records that `user` follows task `task` (`following`) or not, replacing their choice.
pub async fn choose(
    conn: &mut PgConnection,
    task: Uuid,
    user: Uuid,
    following: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO task_watchers (task_id, user_id, following) VALUES ($1, $2, $3)
         ON CONFLICT (task_id, user_id) DO UPDATE SET following = $3, at = now()",
    )
    .bind(task)
    .bind(user)
    .bind(following)
    .execute(conn)
    .await?;
    Ok(())
}

/// `user` follows task `task` unless they chose otherwise before (a commenter's default).
pub async fn follow_by_default(
    conn: &mut PgConnection,
    task: Uuid,
    user: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO task_watchers (task_id, user_id, following) VALUES ($1, $2, true)
         ON CONFLICT DO NOTHING",
    )
    .bind(task)
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}
