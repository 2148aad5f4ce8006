//! media-svc's use cases: receive uploads, read and delete files, sign links, make thumbnails,
//! remove a deleted task's files, sweep the store. Errors are [`Error`]; `http` maps them to
//! problem documents and `consumers` to retries, each in one place.

pub mod access;
pub mod cleanup;
pub mod files;
pub mod in_progress;
pub mod links;
pub mod memory;
pub mod process;
pub mod upload;

use crate::domain::names::NameError;

/// Everything a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such file or task, or not one the caller may see.
    #[error("not found")]
    NotFound,
    /// The caller may see the task but not change its files.
    #[error("only people who may edit the task may add or delete its files")]
    Forbidden,
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("uploading it would pass your quota of {quota} bytes ({used} bytes are in use or being uploaded)")]
    QuotaExceeded { quota: u64, used: u64 },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("files of type {0} are not accepted")]
    TypeNotAllowed(String),
    #[error("{0} files are refused: they can carry scripts that run in a browser")]
    ActiveContent(&'static str),
    #[error("the name says .{extension} but the content is {actual}")]
    TypeMismatch { extension: String, actual: String },
    #[error("the file contains markup a browser would run ({0}); it is refused")]
    Polyglot(&'static str),
    #[error("the image is {width}×{height} pixels, more than the limit of {max} pixels")]
    ImageTooLarge { width: u32, height: u32, max: u64 },
    #[error("the file is empty")]
    Empty,
    /// The request itself is malformed (not multipart, a part that is not a file...).
    #[error("{0}")]
    BadRequest(String),
    /// A signed link that is expired, changed, or for something else.
    #[error(transparent)]
    Link(#[from] links::LinkError),
    #[error("task-svc is unavailable")]
    TasksUnavailable(#[from] access::Unavailable),
    #[error("the object store is unavailable: {0}")]
    Store(#[from] crate::blobs::Error),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The rows may or may not have been committed (`shared::db::CommitError::Unknown`).
    #[error("the outcome of the commit is unknown: {0}")]
    Unknown(sqlx::Error),
    #[error("an event could not be written: {0}")]
    Event(#[from] serde_json::Error),
}
