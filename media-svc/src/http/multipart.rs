//! Reading an upload's `multipart/form-data` with `multer`, bounded: the bytes that arrive while
//! no file data flows (the preamble, each part's headers, the boundaries) may not pass
//! [`MAX_BETWEEN_FILES`], so a body of endless headers cannot fill memory (multer keeps a
//! part's headers whole until their blank line). Each file's own size is limited where it is
//! received ([`crate::service::upload::receive`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// The most bytes that may arrive while no file data flows.
pub const MAX_BETWEEN_FILES: usize = 4 * 1024 * 1024;

/// Counts the bytes that arrived since file data last flowed.
#[derive(Clone, Default)]
pub struct Guard(Arc<AtomicUsize>);

impl Guard {
    /// The request body, failing once [`MAX_BETWEEN_FILES`] bytes came without file data.
    pub fn body(&self, body: Body) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let pending = self.0.clone();
        body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            if pending.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > MAX_BETWEEN_FILES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_BETWEEN_FILES} bytes of part headers or boundaries"
                )));
            }
            Ok(chunk)
        })
    }

    /// A file's data; each chunk of it resets the count.
    pub fn data<S, E>(&self, field: S) -> impl Stream<Item = Result<Bytes, E>> + Unpin
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let pending = self.0.clone();
        field.inspect(move |chunk| {
            if chunk.is_ok() {
                pending.store(0, Ordering::Relaxed);
            }
        })
    }
}
