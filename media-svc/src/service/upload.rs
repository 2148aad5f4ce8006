//! Receiving files: each is streamed into the object store as it arrives (never whole in
//! memory), checked on the way (size, type from the bytes, markup anywhere in it), then all of a
//! request's files are committed together, or none.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use shared::{events::CloudEvent, events::MediaUploaded, identity::Identity};
use uuid::Uuid;

use super::Error;
use crate::blobs::Blobs;
use crate::domain::{self, names::FileName, sniff};
use crate::store::{self, MediaRow};
use crate::AppState;

/// What one file may be.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    /// The most bytes it may have: the file limit, or what is left of the quota.
    pub max_bytes: u64,
    /// Whether `max_bytes` is the quota's (the answer names which limit was passed).
    pub quota: Option<(u64, u64)>,
    pub allowed_types: &'a [String],
    pub max_image_pixels: u64,
}

/// A file in the store, not yet committed.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: Uuid,
    pub key: String,
    pub name: FileName,
    pub content_type: &'static str,
    pub size: u64,
    pub sha256: String,
}

/// Streams one file from `body` into the store under a new key, checking it on the way. On any
/// refusal nothing of it is left in the store.
pub async fn receive<S, E>(
    blobs: &Blobs,
    rules: &Rules<'_>,
    name: FileName,
    mut body: S,
) -> Result<Received, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut incoming = Counted {
        body: &mut body,
        size: 0,
        rules,
    };
    // The first part: small files end within it and are written in one request.
    let mut first = Vec::new();
    let mut first_len = 0usize;
    let mut ended = false;
    while first_len < blobs.part_bytes() {
        match incoming.next().await? {
            Some(chunk) => {
                first_len += chunk.len();
                first.push(chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    if incoming.size == 0 {
        return Err(Error::Empty);
    }
    let head = head_of(&first);
    let content_type = check_head(rules, &name, &head)?;
    let mut scanner = sniff::MarkupScanner::new(content_type.starts_with("text/"));
    let mut hasher = Sha256::new();
    for chunk in &first {
        if let Some(marker) = scanner.feed(chunk) {
            return Err(Error::Polyglot(marker));
        }
        hasher.update(chunk);
    }
    let id = Uuid::now_v7();
    let key = domain::object_key(id);
    if ended {
        blobs.put(&key, Bytes::from(first.concat())).await?;
    } else {
        let mut upload = blobs.begin(&key).await?;
        let streamed = async {
            for chunk in first {
                upload.write(chunk).await?;
            }
            while let Some(chunk) = incoming.next().await? {
                if let Some(marker) = scanner.feed(&chunk) {
                    return Err(Error::Polyglot(marker));
                }
                hasher.update(&chunk);
                upload.write(chunk).await?;
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => upload.finish().await?,
            Err(err) => {
                upload.abort().await;
                return Err(err);
            }
        }
    }
    Ok(Received {
        id,
        key,
        name,
        content_type,
        size: incoming.size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// A file's body, counted against its limit as it arrives.
struct Counted<'a, 'r, S> {
    body: &'a mut S,
    size: u64,
    rules: &'a Rules<'r>,
}

impl<S, E> Counted<'_, '_, S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        match self.body.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(Error::BadRequest(format!("the upload broke off: {e}"))),
            Some(Ok(chunk)) => {
                self.size += chunk.len() as u64;
                if self.size > self.rules.max_bytes {
                    return Err(match self.rules.quota {
                        Some((quota, used)) => Error::QuotaExceeded { quota, used },
                        None => Error::TooLarge {
                            limit: self.rules.max_bytes,
                        },
                    });
                }
                Ok(Some(chunk))
            }
        }
    }
}

fn head_of(chunks: &[Bytes]) -> Vec<u8> {
    let mut head = Vec::with_capacity(sniff::HEAD_BYTES);
    for chunk in chunks {
        let room = sniff::HEAD_BYTES - head.len();
        head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if head.len() == sniff::HEAD_BYTES {
            break;
        }
    }
    head
}

/// The file's type, if it may be uploaded at all.
fn check_head(rules: &Rules, name: &FileName, head: &[u8]) -> Result<&'static str, Error> {
    let extension = name.extension();
    let content_type = sniff::sniff(head, extension.as_deref());
    match content_type {
        "image/svg+xml" => return Err(Error::ActiveContent("SVG")),
        "text/html" => return Err(Error::ActiveContent("HTML")),
        _ => {}
    }
    if !rules.allowed_types.iter().any(|t| t == content_type) {
        return Err(Error::TypeNotAllowed(content_type.to_string()));
    }
    if sniff::contradicts(extension.as_deref(), content_type) {
        return Err(Error::TypeMismatch {
            extension: extension.unwrap_or_default(),
            actual: content_type.to_string(),
        });
    }
    if domain::is_image(content_type) {
        // The header names the size before any pixel is decoded; a huge one is refused now.
        let dimensions = image::ImageReader::new(std::io::Cursor::new(head))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok());
        if let Some((width, height)) = dimensions {
            if u64::from(width) * u64::from(height) > rules.max_image_pixels {
                return Err(Error::ImageTooLarge {
                    width,
                    height,
                    max: rules.max_image_pixels,
                });
            }
        }
    }
    Ok(content_type)
}

/// Commits a request's files to task `task_id`, all or none, with a `media.uploaded` each. On
/// a failure before the commit their objects are deleted again; when the commit's own outcome
/// cannot be learnt (the connection broke during it and stayed away) they are kept, since the
/// rows may exist, and the sweep removes them if not (it also does should this process die).
pub async fn commit(
    state: &AppState,
    identity: &Identity,
    task_id: Uuid,
    files: Vec<Received>,
) -> Result<Vec<MediaRow>, Error> {
    shared::crash::point("before_commit");
    match commit_rows(state, identity, task_id, &files).await {
        Ok(rows) => Ok(rows),
        Err(Committing::Refused(err)) => {
            discard(&state.blobs, &files).await;
            Err(err)
        }
        Err(Committing::Unknown(err)) => {
            tracing::warn!(error = %err, files = files.len(), "an upload's commit has no known outcome; its objects stay for the sweep");
            Err(err)
        }
    }
}

/// How committing failed.
enum Committing {
    /// Nothing was committed.
    Refused(Error),
    /// The commit may or may not have happened.
    Unknown(Error),
}

impl<E: Into<Error>> From<E> for Committing {
    fn from(err: E) -> Self {
        Committing::Refused(err.into())
    }
}

async fn commit_rows(
    state: &AppState,
    identity: &Identity,
    task_id: Uuid,
    files: &[Received],
) -> Result<Vec<MediaRow>, Committing> {
    let config = &state.config.files;
    let mut tx = state.pool.begin().await?;
    store::media::lock_task(&mut tx, task_id).await?;
    if store::media::task_is_deleted(&mut tx, task_id).await? {
        return Err(Error::NotFound.into());
    }
    store::media::lock_owner(&mut tx, identity.user_id).await?;
    let used = store::media::used_bytes(&mut tx, identity.user_id)
        .await?
        .max(0) as u64;
    let adding: u64 = files.iter().map(|f| f.size).sum();
    if used + adding > config.user_quota_bytes {
        return Err(Error::QuotaExceeded {
            quota: config.user_quota_bytes,
            used,
        }
        .into());
    }
    let mut rows = Vec::with_capacity(files.len());
    for file in files {
        let row = MediaRow {
            id: file.id,
            owner_id: identity.user_id,
            task_id: Some(task_id),
            filename: file.name.as_str().to_string(),
            content_type: file.content_type.to_string(),
            size_bytes: file.size as i64,
            object_key: file.key.clone(),
            sha256: file.sha256.clone(),
            state: "stored".into(),
            processing_error: None,
            created_at: chrono::Utc::now(),
        };
        store::media::insert(&mut tx, &row).await?;
        let event = CloudEvent::new(
            crate::SERVICE,
            MediaUploaded {
                media_id: row.id,
                task_id,
                owner_id: row.owner_id,
                filename: row.filename.clone(),
                content_type: row.content_type.clone(),
                size_bytes: row.size_bytes,
                sha256: row.sha256.clone(),
            },
        );
        shared::outbox::enqueue(&mut tx, event).await?;
        rows.push(row);
    }
    match shared::db::commit(&state.pool, tx).await {
        Ok(()) => Ok(rows),
        Err(shared::db::CommitError::Unknown(e)) => Err(Committing::Unknown(Error::Unknown(e))),
        Err(shared::db::CommitError::Failed(e)) => Err(Committing::Refused(e.into())),
    }
}

/// Deletes the objects of files that will not be committed.
pub async fn discard(blobs: &Blobs, files: &[Received]) {
    for file in files {
        if let Err(err) = blobs.delete(&file.key).await {
            tracing::warn!(key = %file.key, error = %err, "an uncommitted object stays for the sweep");
        }
    }
}
