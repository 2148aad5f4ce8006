//! media-svc's types and rules: file names, content types from the bytes, byte ranges, and the
//! keys objects are stored under. No SQL, HTTP or broker here.

pub mod names;
pub mod range;
pub mod sniff;

use uuid::Uuid;

/// Where an upload's bytes are kept: a generated key, never the person's file name.
pub fn object_key(media_id: Uuid) -> String {
    format!("objects/{media_id}")
}

/// Where a derivative of an upload is kept.
pub fn thumbnail_key(media_id: Uuid, variant: &str) -> String {
    format!("thumbnails/{media_id}/{variant}")
}

/// The thumbnail variant of a given longest side.
pub fn thumbnail_variant(px: u32) -> String {
    format!("thumb-{px}")
}

/// Whether the processing step decodes this type to make thumbnails.
pub fn is_image(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}
