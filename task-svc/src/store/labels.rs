//! Labels (`labels`): a person's own and their channels'.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::label::Label;

const COLUMNS: &str = "id, name, color, channel_id, created_at";

/// `user`'s own labels and those of the channels they are a member of, by name.
pub async fn visible(conn: &mut PgConnection, user: Uuid) -> Result<Vec<Label>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM labels
          WHERE owner_id = $1
             OR channel_id IN (SELECT channel_id FROM channel_members WHERE user_id = $1)
          ORDER BY name, channel_id NULLS FIRST, id"
    ))
    .bind(user)
    .fetch_all(conn)
    .await
}

/// How many labels `owner` (or `channel`) has.
pub async fn count(
    conn: &mut PgConnection,
    owner: Option<Uuid>,
    channel: Option<Uuid>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM labels WHERE owner_id IS NOT DISTINCT FROM $1
            AND channel_id IS NOT DISTINCT FROM $2",
    )
    .bind(owner)
    .bind(channel)
    .fetch_one(conn)
    .await
}

/// Inserts a label; `None` if its owner (or channel) has one of that name.
pub async fn insert(
    conn: &mut PgConnection,
    name: &str,
    color: &str,
    owner: Option<Uuid>,
    channel: Option<Uuid>,
) -> Result<Option<Label>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO labels (id, name, color, owner_id, channel_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(color)
    .bind(owner)
    .bind(channel)
    .fetch_optional(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct Owned {
    #[sqlx(flatten)]
    label: Label,
    owner_id: Option<Uuid>,
}

/// Label `id` with its person (for a personal one), if `user` may see it.
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
) -> Result<Option<(Label, Option<Uuid>)>, sqlx::Error> {
    let row: Option<Owned> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, owner_id FROM labels
          WHERE id = $1 AND (owner_id = $2
             OR channel_id IN (SELECT channel_id FROM channel_members WHERE user_id = $2))"
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.label, row.owner_id)))
}

pub async fn set_color(
    conn: &mut PgConnection,
    id: Uuid,
    color: &str,
) -> Result<Label, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE labels SET color = $2 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(color)
    .fetch_one(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM labels WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(drop)
}
