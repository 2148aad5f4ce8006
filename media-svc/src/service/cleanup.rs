//! Removing files: a deleted task's (on `task.deleted`), and the sweep that reconciles the store
//! with the catalogue after crashes.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use shared::events::{CloudEvent, TaskDeleted};
use uuid::Uuid;

use super::{files, Error};
use crate::store;
use crate::AppState;

/// Handles one `task.deleted`: the task is remembered as gone (a late upload to it is refused),
/// its rows go in one transaction, then its objects. Running it twice changes nothing more.
pub async fn task_deleted(state: &AppState, event: &CloudEvent) -> Result<usize, Error> {
    let deleted: TaskDeleted = event
        .decode()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    store::media::lock_task(&mut tx, deleted.task_id).await?;
    store::media::mark_task_deleted(&mut tx, deleted.task_id).await?;
    let ids = store::media::ids_for_task(&mut tx, deleted.task_id).await?;
    let keys = files::remove_rows(&mut tx, &ids, Uuid::nil()).await?;
    tx.commit().await?;
    files::delete_objects(state, &keys).await;
    if !ids.is_empty() {
        tracing::info!(task_id = %deleted.task_id, files = ids.len(), "a deleted task's files removed");
    }
    Ok(ids.len())
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct SweepReport {
    /// Objects in the store that were looked at.
    pub objects_checked: u64,
    /// Objects no committed row refers to (a crash between the store write and the commit, a
    /// failed delete), removed.
    pub orphan_objects_removed: u64,
    /// Half-written files of uploads that never finished (local store), removed.
    pub partial_files_removed: u64,
    /// Rows that were looked at.
    pub rows_checked: u64,
    /// Rows whose object is gone from the store, removed (with `media.deleted`).
    pub rows_without_object_removed: u64,
    /// Thumbnail rows whose object is gone, removed (the file itself stays).
    pub thumbnails_without_object_removed: u64,
    /// Set when rows whose object is missing were kept: so many objects are missing that the
    /// store is more likely the wrong one (an unmounted folder, another bucket) than emptied.
    pub refused: Option<String>,
}

/// Reconciles the store and the catalogue. Objects younger than `files.sweep_grace_secs` are
/// left alone: their upload may be about to commit.
pub async fn sweep(state: &AppState) -> Result<SweepReport, Error> {
    let grace = Duration::from_secs(state.config.files.sweep_grace_secs);
    let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let mut report = SweepReport::default();
    let kept: HashSet<String> = store::media::all_keys(&state.pool)
        .await?
        .into_iter()
        .collect();
    for prefix in ["objects", "thumbnails"] {
        for (key, modified) in state.blobs.list(prefix).await? {
            report.objects_checked += 1;
            if !kept.contains(&key) && modified <= cutoff {
                state.blobs.delete(&key).await?;
                report.orphan_objects_removed += 1;
            }
        }
    }
    for path in state.blobs.stale_partial_files(grace) {
        if std::fs::remove_file(&path).is_ok() {
            report.partial_files_removed += 1;
        }
    }
    let mut gone = Vec::new();
    let mut thumbs_gone = Vec::new();
    for (id, key, thumbs) in store::media::keys_by_file(&state.pool).await? {
        report.rows_checked += 1;
        if !state.blobs.exists(&key).await? {
            gone.push(id);
            continue;
        }
        for thumb in thumbs {
            if !state.blobs.exists(&thumb).await? {
                thumbs_gone.push(thumb);
            }
        }
    }
    if !thumbs_gone.is_empty() {
        report.thumbnails_without_object_removed =
            store::media::delete_thumbnails(&state.pool, &thumbs_gone).await?;
    }
    // Half of the files (and more than a few) missing looks like the wrong store, not lost
    // objects: deleting their rows would lose the catalogue of a store that comes back.
    let suspicious = gone.len() > 3 && gone.len() as u64 * 2 > report.rows_checked;
    if suspicious {
        let why = format!(
            "{} of {} files have no object in {}: is it the right store? Their rows are kept",
            gone.len(),
            report.rows_checked,
            state.blobs.describe
        );
        tracing::error!("{why}");
        report.refused = Some(why);
    } else if !gone.is_empty() {
        let mut tx = state.pool.begin().await?;
        let keys = files::remove_rows(&mut tx, &gone, Uuid::nil()).await?;
        tx.commit().await?;
        files::delete_objects(state, &keys).await;
        report.rows_without_object_removed = gone.len() as u64;
    }
    tracing::info!(?report, "media sweep");
    metrics::counter!("taskmesh_media_sweep_removed_total", "what" => "objects")
        .increment(report.orphan_objects_removed + report.partial_files_removed);
    metrics::counter!("taskmesh_media_sweep_removed_total", "what" => "rows")
        .increment(report.rows_without_object_removed);
    Ok(report)
}
