//! What the API answers about files.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::store::{MediaRow, ThumbnailRow};

/// A stored file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileView {
    pub id: Uuid,
    pub task_id: Option<Uuid>,
    /// Who uploaded it.
    pub owner_id: Uuid,
    /// The name it was uploaded with (offered again on download).
    pub filename: String,
    /// Decided from the bytes when it was uploaded.
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the bytes; the download's `ETag`.
    pub sha256: String,
    /// `stored` (processing pending), `processed` (thumbnails made), `skipped` (not an image,
    /// or too large), `refused` (see `processing_error`).
    pub state: String,
    pub processing_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Download it here (with a bearer token), or ask `/link` for a signed URL.
    pub content_url: String,
    pub thumbnails: Vec<ThumbnailView>,
}

/// A smaller copy of an image, without its metadata.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThumbnailView {
    pub variant: String,
    pub width: i32,
    pub height: i32,
    pub content_type: String,
    pub size_bytes: i64,
    pub content_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileList {
    pub items: Vec<FileView>,
}

/// A download link that needs no token, until it expires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    pub url: String,
    pub method: String,
    pub expires_at: DateTime<Utc>,
}

impl FileView {
    pub fn new(row: MediaRow, thumbnails: Vec<ThumbnailRow>) -> Self {
        let content_url = format!("/api/v1/media/{}/content", row.id);
        Self {
            thumbnails: thumbnails
                .into_iter()
                .map(|t| ThumbnailView {
                    content_url: format!("{content_url}?variant={}", t.variant),
                    variant: t.variant,
                    width: t.width,
                    height: t.height,
                    content_type: t.content_type,
                    size_bytes: t.size_bytes,
                })
                .collect(),
            content_url,
            id: row.id,
            task_id: row.task_id,
            owner_id: row.owner_id,
            filename: row.filename,
            content_type: row.content_type,
            size_bytes: row.size_bytes,
            sha256: row.sha256,
            state: row.state,
            processing_error: row.processing_error,
            created_at: row.created_at,
        }
    }
}

impl FileList {
    pub fn new(files: Vec<(MediaRow, Vec<ThumbnailRow>)>) -> Self {
        Self {
            items: files
                .into_iter()
                .map(|(row, thumbs)| FileView::new(row, thumbs))
                .collect(),
        }
    }
}
