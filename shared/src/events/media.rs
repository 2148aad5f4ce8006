//! media-svc's events: a file was attached to a task, its thumbnails were made, it was deleted.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::EventPayload;

/// A file was stored and attached to a task (published once its row committed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaUploaded {
    pub media_id: Uuid,
    pub task_id: Uuid,
    /// Who uploaded it.
    pub owner_id: Uuid,
    pub filename: String,
    /// Decided from the bytes, not from what the client said.
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

impl EventPayload for MediaUploaded {
    const TYPE: &'static str = "media.uploaded";
    fn subject(&self) -> String {
        self.media_id.to_string()
    }
}

/// One derivative of an uploaded image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Thumbnail {
    pub variant: String,
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub size_bytes: i64,
}

/// An upload was processed: `state` is `processed` (its `thumbnails` were made), `skipped`
/// (not an image, or too large to decode) or `refused` (`error` says why: a decompression bomb,
/// an image that does not decode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaProcessed {
    pub media_id: Uuid,
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub state: String,
    pub thumbnails: Vec<Thumbnail>,
    pub error: Option<String>,
}

impl EventPayload for MediaProcessed {
    const TYPE: &'static str = "media.processed";
    fn subject(&self) -> String {
        self.media_id.to_string()
    }
}

/// A file was deleted: by a person, or because its task was (`actor_id` nil: the system).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaDeleted {
    pub media_id: Uuid,
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub actor_id: Uuid,
}

impl EventPayload for MediaDeleted {
    const TYPE: &'static str = "media.deleted";
    fn subject(&self) -> String {
        self.media_id.to_string()
    }
}
