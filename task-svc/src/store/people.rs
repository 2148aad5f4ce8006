//! Names from task-svc's read model of users (`users`), each query carrying who may see whom:
//! the caller, people who share a channel with them, and (when naming) the owners and assignees
//! of tasks they see; an admin sees everyone.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::person::{Person, SEARCH_LIMIT};

/// Active people whose name contains `contains` (an escaped `ILIKE` pattern) that `me` may see,
/// those starting with `prefix` first, then by name.
pub async fn search(
    conn: &mut PgConnection,
    me: Uuid,
    admin: bool,
    contains: &str,
    prefix: &str,
) -> Result<Vec<Person>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.display_name, u.active
           FROM users u
          WHERE u.active AND NOT u.deleted AND u.display_name ILIKE $3
            AND ($2 OR u.id = $1 OR u.id IN (
                 SELECT b.user_id FROM channel_members a
                   JOIN channel_members b ON b.channel_id = a.channel_id
                  WHERE a.user_id = $1))
          ORDER BY u.display_name ILIKE $4 DESC, lower(u.display_name), u.id
          LIMIT $5",
    )
    .bind(me)
    .bind(admin)
    .bind(contains)
    .bind(prefix)
    .bind(SEARCH_LIMIT)
    .fetch_all(conn)
    .await
}

/// The people among `ids` that `me` may see.
pub async fn named(
    conn: &mut PgConnection,
    me: Uuid,
    admin: bool,
    ids: &[Uuid],
) -> Result<Vec<Person>, sqlx::Error> {
    sqlx::query_as(
        "WITH mine AS (SELECT channel_id FROM channel_members WHERE user_id = $1)
         SELECT u.id, u.display_name, u.active
           FROM users u
          WHERE u.id = ANY($3) AND NOT u.deleted
            AND ($2 OR u.id = $1
                 OR EXISTS (SELECT 1 FROM channel_members m
                             WHERE m.user_id = u.id AND m.channel_id IN (SELECT channel_id FROM mine))
                 OR EXISTS (SELECT 1 FROM tasks t
                             WHERE (t.owner_id = u.id OR t.assignee_id = u.id)
                               AND (t.owner_id = $1 OR t.assignee_id = $1
                                    OR t.channel_id IN (SELECT channel_id FROM mine))))
          ORDER BY lower(u.display_name), u.id",
    )
    .bind(me)
    .bind(admin)
    .bind(ids)
    .fetch_all(conn)
    .await
}
