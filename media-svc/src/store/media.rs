//! `media_objects` (one row a stored file), `media_thumbnails` and `deleted_tasks`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub task_id: Option<Uuid>,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub object_key: String,
    pub sha256: String,
    pub state: String,
    pub processing_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThumbnailRow {
    pub media_id: Uuid,
    pub variant: String,
    pub object_key: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub size_bytes: i64,
}

const COLUMNS: &str = "id, owner_id, task_id, filename, content_type, size_bytes, object_key, \
    sha256, state, processing_error, created_at";

pub async fn insert(tx: &mut PgConnection, row: &MediaRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO media_objects
           (id, owner_id, task_id, filename, content_type, size_bytes, object_key, sha256, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.id)
    .bind(row.owner_id)
    .bind(row.task_id)
    .bind(&row.filename)
    .bind(&row.content_type)
    .bind(row.size_bytes)
    .bind(&row.object_key)
    .bind(&row.sha256)
    .bind(&row.state)
    .execute(tx)
    .await
    .map(|_| ())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<MediaRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM media_objects WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A task's files, oldest first.
pub async fn for_task(pool: &PgPool, task_id: Uuid) -> Result<Vec<MediaRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM media_objects WHERE task_id = $1 ORDER BY created_at, id"
    ))
    .bind(task_id)
    .fetch_all(pool)
    .await
}

/// What one person uploaded, newest first.
pub async fn for_owner(
    pool: &PgPool,
    owner_id: Uuid,
    limit: i64,
) -> Result<Vec<MediaRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM media_objects WHERE owner_id = $1
          ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(owner_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn thumbnails(
    pool: &PgPool,
    media_ids: &[Uuid],
) -> Result<Vec<ThumbnailRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT media_id, variant, object_key, content_type, width, height, size_bytes
           FROM media_thumbnails WHERE media_id = ANY($1) ORDER BY media_id, variant",
    )
    .bind(media_ids)
    .fetch_all(pool)
    .await
}

/// Serialises uploads of one person, so that two at once cannot both pass the quota.
pub async fn lock_owner(tx: &mut PgConnection, owner_id: Uuid) -> Result<(), sqlx::Error> {
    advisory_lock(tx, "owner", owner_id).await
}

/// Serialises a task's uploads with its deletion, so that no file commits after the task's
/// files were removed.
pub async fn lock_task(tx: &mut PgConnection, task_id: Uuid) -> Result<(), sqlx::Error> {
    advisory_lock(tx, "task", task_id).await
}

async fn advisory_lock(tx: &mut PgConnection, kind: &str, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("media-svc:{kind}:{id}"))
        .execute(tx)
        .await
        .map(|_| ())
}

/// Bytes `owner_id`'s files take, thumbnails not counted.
pub async fn used_bytes(tx: &mut PgConnection, owner_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(size_bytes), 0)::bigint FROM media_objects WHERE owner_id = $1",
    )
    .bind(owner_id)
    .fetch_one(tx)
    .await
}

pub async fn task_is_deleted(tx: &mut PgConnection, task_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deleted_tasks WHERE task_id = $1)")
        .bind(task_id)
        .fetch_one(tx)
        .await
}

pub async fn mark_task_deleted(tx: &mut PgConnection, task_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO deleted_tasks (task_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(task_id)
        .execute(tx)
        .await
        .map(|_| ())
}

/// Deletes the rows of files (`ids`) with their thumbnails; returns them with every object key
/// they held, for the caller to delete from the store after the commit.
pub async fn delete(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(MediaRow, Vec<String>)>, sqlx::Error> {
    let thumbs: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT media_id, object_key FROM media_thumbnails WHERE media_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let rows: Vec<MediaRow> = sqlx::query_as(&format!(
        "DELETE FROM media_objects WHERE id = ANY($1) RETURNING {COLUMNS}"
    ))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut keys = vec![row.object_key.clone()];
            keys.extend(
                thumbs
                    .iter()
                    .filter(|(id, _)| *id == row.id)
                    .map(|(_, key)| key.clone()),
            );
            (row, keys)
        })
        .collect())
}

pub async fn ids_for_task(tx: &mut PgConnection, task_id: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM media_objects WHERE task_id = $1")
        .bind(task_id)
        .fetch_all(tx)
        .await
}

/// Records the outcome of processing an upload, with its thumbnails; `false` when the file is
/// gone (deleted meanwhile).
pub async fn set_processed(
    tx: &mut PgConnection,
    media_id: Uuid,
    state: &str,
    error: Option<&str>,
    thumbnails: &[ThumbnailRow],
) -> Result<bool, sqlx::Error> {
    let updated =
        sqlx::query("UPDATE media_objects SET state = $2, processing_error = $3 WHERE id = $1")
            .bind(media_id)
            .bind(state)
            .bind(error)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    for t in thumbnails {
        sqlx::query(
            "INSERT INTO media_thumbnails
               (media_id, variant, object_key, content_type, width, height, size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (media_id, variant) DO NOTHING",
        )
        .bind(t.media_id)
        .bind(&t.variant)
        .bind(&t.object_key)
        .bind(&t.content_type)
        .bind(t.width)
        .bind(t.height)
        .bind(t.size_bytes)
        .execute(&mut *tx)
        .await?;
    }
    Ok(true)
}

/// Deletes the thumbnail rows of `keys` (their objects are gone).
pub async fn delete_thumbnails(pool: &PgPool, keys: &[String]) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM media_thumbnails WHERE object_key = ANY($1)")
        .bind(keys)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}

/// Every object key a committed row refers to (the sweep's list of what to keep).
pub async fn all_keys(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT object_key FROM media_objects UNION ALL SELECT object_key FROM media_thumbnails",
    )
    .fetch_all(pool)
    .await
}

/// Every file's id and key, with its thumbnails' keys (the sweep checks each is in the store).
pub async fn keys_by_file(pool: &PgPool) -> Result<Vec<(Uuid, String, Vec<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.object_key,
                COALESCE(array_agg(t.object_key) FILTER (WHERE t.object_key IS NOT NULL), '{}')
           FROM media_objects m LEFT JOIN media_thumbnails t ON t.media_id = m.id
          GROUP BY m.id, m.object_key",
    )
    .fetch_all(pool)
    .await
}
