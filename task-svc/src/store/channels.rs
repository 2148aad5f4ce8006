//! Channels and their members (`channels`, `channel_members`).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::channel::{Channel, Member, MAX_MEMBERS_LISTED};

/// Channel `id` if `user` is a member (or `admin`), with the join code for its owner only.
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    admin: bool,
) -> Result<Option<Channel>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.name, c.owner_id,
                CASE WHEN c.owner_id = $2 THEN c.join_code END AS join_code, c.created_at,
                (SELECT count(*) FROM channel_members m WHERE m.channel_id = c.id) AS members
           FROM channels c
          WHERE c.id = $1
            AND (EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = $2)
                 OR $3)",
    )
    .bind(id)
    .bind(user)
    .bind(admin)
    .fetch_optional(conn)
    .await
}

/// Creates channel `id` owned by `owner`, its first member.
pub async fn create(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    owner: Uuid,
    code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO channels (id, name, owner_id, join_code) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name)
        .bind(owner)
        .bind(code)
        .execute(&mut *conn)
        .await?;
    add_member(conn, id, owner).await?;
    Ok(())
}

/// The channels `user` is a member of, newest first (at most 200).
pub async fn list(pool: &PgPool, user: Uuid) -> Result<Vec<Channel>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.name, c.owner_id,
                CASE WHEN c.owner_id = $1 THEN c.join_code END AS join_code, c.created_at,
                (SELECT count(*) FROM channel_members m2 WHERE m2.channel_id = c.id) AS members
           FROM channels c JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $1
          ORDER BY c.created_at DESC LIMIT 200",
    )
    .bind(user)
    .fetch_all(pool)
    .await
}

/// The members of channel `id`: its owner first, then the others by name (at most
/// [`MAX_MEMBERS_LISTED`]).
pub async fn members(conn: &mut PgConnection, id: Uuid) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, coalesce(u.display_name, '') AS display_name,
                m.user_id = c.owner_id AS owner, m.joined_at
           FROM channel_members m
           JOIN channels c ON c.id = m.channel_id
           LEFT JOIN users u ON u.id = m.user_id
          WHERE m.channel_id = $1
          ORDER BY m.user_id = c.owner_id DESC, lower(coalesce(u.display_name, '')), m.user_id
          LIMIT $2",
    )
    .bind(id)
    .bind(MAX_MEMBERS_LISTED)
    .fetch_all(conn)
    .await
}

/// The channel with join code `code`: its id, name and owner.
pub async fn by_code(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<(Uuid, String, Uuid)>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, owner_id FROM channels WHERE join_code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// Adds `user` to `channel`. Returns whether they were not a member yet.
pub async fn add_member(
    conn: &mut PgConnection,
    channel: Uuid,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(channel)
    .bind(user)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Removes `user` from `channel`. Returns whether they were a member.
pub async fn remove_member(
    conn: &mut PgConnection,
    channel: Uuid,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
            .bind(channel)
            .bind(user)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

pub async fn set_code(
    conn: &mut PgConnection,
    channel: Uuid,
    code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE channels SET join_code = $2 WHERE id = $1")
        .bind(channel)
        .bind(code)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether `user_id` is a member of `channel_id`, and who owns it (`None` if no such channel).
pub async fn membership(
    conn: &mut PgConnection,
    channel_id: Uuid,
    user_id: Uuid,
) -> Result<Option<(bool, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM channel_members WHERE channel_id = c.id AND user_id = $2),
                c.owner_id
           FROM channels c WHERE c.id = $1",
    )
    .bind(channel_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}
