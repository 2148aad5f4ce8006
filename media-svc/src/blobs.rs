//! The object store that holds the bytes: a local folder (the default) or S3-compatible storage,
//! both through `object_store`. Keys are generated ([`crate::domain::object_key`]); nothing here
//! knows about tasks or people.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{stream::BoxStream, StreamExt};
use object_store::{
    aws::AmazonS3Builder, local::LocalFileSystem, path::Path, ClientOptions, GetOptions, GetRange,
    GetResult, GetResultPayload, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};
use secrecy::ExposeSecret;
use shared::config::{FilesConfig, StoreKind};

/// Parts of one multipart upload sent to the store at once.
const PARTS_IN_FLIGHT: usize = 2;

/// How much of a local file one read takes.
const READ_CHUNK: usize = 256 * 1024;

fn local_error(err: std::io::Error) -> Error {
    Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(err),
    }
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The local store's folder (absolute); `None` for S3.
    pub local_dir: Option<PathBuf>,
    /// What `taskmesh up` prints and the logs name: the folder, or `s3://bucket`.
    pub describe: String,
    part_bytes: usize,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// A store error: the object is not there, or the store could not be reached or refused.
pub type Error = object_store::Error;

pub fn is_not_found(err: &Error) -> bool {
    matches!(err, Error::NotFound { .. })
}

impl Blobs {
    pub fn from_config(config: &FilesConfig) -> anyhow::Result<Self> {
        let (store, local_dir, describe): (Arc<dyn ObjectStore>, _, _) = match config.store {
            StoreKind::Local => {
                let dir = std::path::absolute(&config.dir)?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    anyhow::anyhow!("files.dir {} cannot be created: {e}", dir.display())
                })?;
                let store = LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
                let describe = dir.display().to_string();
                (Arc::new(store), Some(dir), describe)
            }
            StoreKind::S3 => {
                let timeout = Duration::from_secs(config.transfer_timeout_secs);
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&config.s3_bucket)
                    .with_region(&config.s3_region)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(timeout),
                    )
                    // A store that is away is a clear 503 soon, not minutes of retries.
                    .with_retry(RetryConfig {
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(10),
                        ..Default::default()
                    });
                if let Some(endpoint) = &config.s3_endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(key) = &config.s3_access_key_id {
                    builder = builder.with_access_key_id(key.expose_secret());
                }
                if let Some(secret) = &config.s3_secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose_secret());
                }
                let describe = format!("s3://{}", config.s3_bucket);
                (Arc::new(builder.build()?), None, describe)
            }
        };
        Ok(Self {
            store,
            local_dir,
            describe,
            part_bytes: config.part_bytes,
        })
    }

    /// The size of one part of a multipart upload; smaller files are written in one request.
    pub fn part_bytes(&self) -> usize {
        self.part_bytes
    }

    /// Writes a whole (small) object in one request.
    pub async fn put(&self, key: &str, bytes: bytes::Bytes) -> Result<(), Error> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
    }

    /// Starts writing a large object in parts; nothing is visible under `key` before
    /// [`Upload::finish`].
    pub async fn begin(&self, key: &str) -> Result<Upload, Error> {
        let upload = self.store.put_multipart(&Path::from(key)).await?;
        Ok(Upload {
            writer: Some(WriteMultipart::new_with_chunk_size(upload, self.part_bytes)),
        })
    }

    /// The object, or the bytes of `range`, as a stream.
    pub async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, Error>>, Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result: GetResult = self.store.get_opts(&Path::from(key), options).await?;
        match result.payload {
            // A local file is read in large chunks (object_store's own stream reads 8 KiB at a
            // time, each on the blocking pool: a download ran at a tenth of the disk's speed).
            GetResultPayload::File(file, _) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let range = result.range;
                let mut file = tokio::fs::File::from_std(file);
                file.seek(std::io::SeekFrom::Start(range.start))
                    .await
                    .map_err(local_error)?;
                let reader = file.take(range.end - range.start);
                let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
                    .map(|chunk| chunk.map_err(local_error));
                Ok(stream.boxed())
            }
            GetResultPayload::Stream(stream) => Ok(stream),
        }
    }

    /// The whole object in memory (thumbnails: the caller bounds the size).
    pub async fn read(&self, key: &str) -> Result<bytes::Bytes, Error> {
        self.store.get(&Path::from(key)).await?.bytes().await
    }

    /// Deletes `key`; an object that is already gone is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self.store.delete(&Path::from(key)).await {
            Err(e) if !is_not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Every object under `prefix` with when it was last written.
    pub async fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, Error> {
        let prefix = Path::from(prefix);
        let mut listing = self.store.list(Some(&prefix));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            found.push((meta.location.to_string(), meta.last_modified));
        }
        Ok(found)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, Error> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The local store's half-written files (`<key>#<n>`, left by a process that died during
    /// an upload) older than `grace`; S3 keeps unfinished uploads out of sight (a bucket
    /// lifecycle rule removes them).
    pub fn stale_partial_files(&self, grace: Duration) -> Vec<PathBuf> {
        let Some(dir) = &self.local_dir else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut folders = vec![dir.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    folders.push(path);
                    continue;
                }
                let partial = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.rsplit_once('#'))
                    .is_some_and(|(_, n)| n.chars().all(|c| c.is_ascii_digit()));
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age >= grace);
                if partial && old {
                    found.push(path);
                }
            }
        }
        found
    }
}

/// A multipart write in progress. Dropped without [`Upload::finish`] (an error, a client that
/// went away), it aborts: no part is left behind.
pub struct Upload {
    writer: Option<WriteMultipart>,
}

impl Upload {
    /// Adds `bytes`, waiting while [`PARTS_IN_FLIGHT`] parts are being sent (so memory stays
    /// at a few parts, however large the file).
    pub async fn write(&mut self, bytes: bytes::Bytes) -> Result<(), Error> {
        let writer = self.writer.as_mut().expect("not finished");
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.put(bytes);
        Ok(())
    }

    pub async fn finish(mut self) -> Result<(), Error> {
        let writer = self.writer.take().expect("not finished");
        writer.finish().await.map(|_| ())
    }

    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            if let Err(err) = writer.abort().await {
                tracing::warn!(error = %err, "could not abort an unfinished upload");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = writer.abort().await;
                });
            }
        }
    }
}
