//! The only SQL of media-svc: its catalogue of files and their thumbnails ([`media`]), the
//! tasks that are gone, and its signing key.

pub mod media;

pub use media::{MediaRow, ThumbnailRow};
