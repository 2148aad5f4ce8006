//! Reading, downloading, deleting and linking to files, each allowed by the file's task.

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use shared::{events::CloudEvent, events::MediaDeleted, identity::Identity};
use uuid::Uuid;

use super::{access::Access, Error};
use crate::domain::range::{self, Wanted};
use crate::store::{self, MediaRow, ThumbnailRow};
use crate::AppState;

/// The file `id` if `identity` may do `need` with it: a file of a task they cannot see, or
/// that does not exist, is [`Error::NotFound`] alike.
pub async fn visible(
    state: &AppState,
    identity: &Identity,
    id: &str,
    need: Access,
) -> Result<MediaRow, Error> {
    let id = Uuid::parse_str(id).map_err(|_| Error::NotFound)?;
    let row = store::media::get(&state.pool, id)
        .await?
        .ok_or(Error::NotFound)?;
    let access = match row.task_id {
        Some(task_id) => state.tasks.access(identity, task_id).await?,
        // Files from before attachments belong to their uploader alone.
        None if row.owner_id == identity.user_id => Access::Edit,
        None => Access::None,
    };
    allow(access, need)?;
    Ok(row)
}

/// `Ok` when `have` covers `need`.
pub fn allow(have: Access, need: Access) -> Result<(), Error> {
    match (have, need) {
        (Access::None, _) => Err(Error::NotFound),
        (Access::Read, Access::Edit) => Err(Error::Forbidden),
        _ => Ok(()),
    }
}

/// A file's rows with their thumbnails.
pub async fn with_thumbnails(
    state: &AppState,
    rows: Vec<MediaRow>,
) -> Result<Vec<(MediaRow, Vec<ThumbnailRow>)>, Error> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let thumbs = store::media::thumbnails(&state.pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = thumbs
                .iter()
                .filter(|t| t.media_id == row.id)
                .cloned()
                .collect();
            (row, mine)
        })
        .collect())
}

/// What `identity` uploaded (the latest 100), on tasks they may still see.
pub async fn mine(
    state: &AppState,
    identity: &Identity,
) -> Result<Vec<(MediaRow, Vec<ThumbnailRow>)>, Error> {
    let rows = store::media::for_owner(&state.pool, identity.user_id, 100).await?;
    let mut seen = std::collections::HashMap::new();
    let mut kept = Vec::with_capacity(rows.len());
    for row in rows {
        let visible = match row.task_id {
            None => true,
            Some(task_id) => match seen.get(&task_id) {
                Some(visible) => *visible,
                None => {
                    let visible = state.tasks.access(identity, task_id).await? != Access::None;
                    seen.insert(task_id, visible);
                    visible
                }
            },
        };
        if visible {
            kept.push(row);
        }
    }
    with_thumbnails(state, kept).await
}

/// A task's files, if `identity` may see the task.
pub async fn for_task(
    state: &AppState,
    identity: &Identity,
    task_id: &str,
) -> Result<Vec<(MediaRow, Vec<ThumbnailRow>)>, Error> {
    let task_id = Uuid::parse_str(task_id).map_err(|_| Error::NotFound)?;
    allow(state.tasks.access(identity, task_id).await?, Access::Read)?;
    let rows = store::media::for_task(&state.pool, task_id).await?;
    with_thumbnails(state, rows).await
}

/// What a download answers.
pub enum Download {
    /// The client's copy (`If-None-Match`) is current: 304.
    NotModified { etag: String },
    /// A range past the end: 416.
    Unsatisfiable { size: u64 },
    /// The bytes: the whole file (200) or `range` of it (206).
    Bytes {
        content_type: String,
        filename: String,
        etag: String,
        size: u64,
        range: Option<std::ops::Range<u64>>,
        stream: BoxStream<'static, Result<bytes::Bytes, crate::blobs::Error>>,
    },
}

/// Opens `row` (or its thumbnail `variant`) for download.
pub async fn open(
    state: &AppState,
    row: &MediaRow,
    variant: Option<&str>,
    range_header: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<Download, Error> {
    let (key, content_type, size, etag, filename) = match variant {
        None | Some("") => (
            row.object_key.clone(),
            row.content_type.clone(),
            row.size_bytes as u64,
            format!("\"{}\"", row.sha256),
            row.filename.clone(),
        ),
        Some(variant) => {
            let thumb = store::media::thumbnails(&state.pool, &[row.id])
                .await?
                .into_iter()
                .find(|t| t.variant == variant)
                .ok_or(Error::NotFound)?;
            let stem = row
                .filename
                .rsplit_once('.')
                .map_or(&*row.filename, |(s, _)| s);
            (
                thumb.object_key,
                thumb.content_type,
                thumb.size_bytes as u64,
                format!("\"{}-{variant}\"", row.sha256),
                format!("{stem}-{variant}.png"),
            )
        }
    };
    if if_none_match.is_some_and(|v| shared::http::etag_listed(v, &etag)) {
        return Ok(Download::NotModified { etag });
    }
    let range = match range::parse(range_header, size) {
        Wanted::Whole => None,
        Wanted::Part(range) => Some(range),
        Wanted::Unsatisfiable => return Ok(Download::Unsatisfiable { size }),
    };
    let stream = state.blobs.get(&key, range.clone()).await.map_err(|e| {
        if crate::blobs::is_not_found(&e) {
            tracing::error!(%key, "a committed file's object is missing; the sweep will remove its row");
            Error::NotFound
        } else {
            Error::Store(e)
        }
    })?;
    Ok(Download::Bytes {
        content_type,
        filename,
        etag,
        size,
        range,
        stream,
    })
}

/// Deletes a file (the caller must be able to edit its task), publishing `media.deleted`.
pub async fn delete(state: &AppState, identity: &Identity, id: &str) -> Result<(), Error> {
    let row = visible(state, identity, id, Access::Edit).await?;
    let mut tx = state.pool.begin().await?;
    let keys = remove_rows(&mut tx, &[row.id], identity.user_id).await?;
    tx.commit().await?;
    delete_objects(state, &keys).await;
    Ok(())
}

/// Deletes the rows of `ids` inside `tx` with a `media.deleted` each (`actor_id` nil: the
/// system); returns their objects' keys, to delete once `tx` committed.
pub async fn remove_rows(
    tx: &mut sqlx::PgConnection,
    ids: &[Uuid],
    actor_id: Uuid,
) -> Result<Vec<String>, Error> {
    let removed = store::media::delete(tx, ids).await?;
    let mut keys = Vec::new();
    for (row, row_keys) in removed {
        let event = CloudEvent::new(
            crate::SERVICE,
            MediaDeleted {
                media_id: row.id,
                task_id: row.task_id.unwrap_or_default(),
                owner_id: row.owner_id,
                actor_id,
            },
        );
        shared::outbox::enqueue(tx, event).await?;
        keys.extend(row_keys);
    }
    Ok(keys)
}

/// Deletes objects whose rows are gone; one that fails stays for the sweep.
pub async fn delete_objects(state: &AppState, keys: &[String]) {
    for key in keys {
        if let Err(err) = state.blobs.delete(key).await {
            tracing::warn!(%key, error = %err, "a deleted file's object stays for the sweep");
        }
    }
}

/// A signed link to `row` (or its `variant`) valid `ttl_secs` (at most the configured limit).
pub fn link(
    state: &AppState,
    row: &MediaRow,
    variant: Option<&str>,
    ttl_secs: Option<u64>,
) -> (String, DateTime<Utc>) {
    let max = state.config.files.link_ttl_secs;
    let ttl = ttl_secs.unwrap_or(max).clamp(1, max);
    let expires = Utc::now() + chrono::Duration::seconds(ttl as i64);
    let url = state
        .links
        .url(&row.id.to_string(), variant.unwrap_or(""), expires);
    (url, expires)
}
