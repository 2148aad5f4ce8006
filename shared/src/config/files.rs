//! media-svc's settings (`files`): where uploads are stored, what may be uploaded and how much,
//! signed links, thumbnails and the sweep. (The `media` section is media-svc's address and
//! database, like every service's.)

use secrecy::SecretString;
use serde::Deserialize;

use super::error::ConfigError;

const MIB: u64 = 1024 * 1024;

/// Which object store holds the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A folder on this machine (`files.dir`): the default, needs nothing installed.
    Local,
    /// An S3-compatible store (`files.s3_*`).
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    pub store: StoreKind,
    /// The local store's folder (created at start; `taskmesh up` prints it).
    pub dir: String,
    /// The S3 bucket (it must exist).
    pub s3_bucket: String,
    /// The S3 endpoint, e.g. `http://127.0.0.1:9000` for a local server; unset: AWS.
    pub s3_endpoint: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<SecretString>,
    pub s3_secret_access_key: Option<SecretString>,
    /// Largest file, in bytes; one byte more is a 413 and nothing is kept.
    pub max_file_bytes: u64,
    /// Files one request may upload.
    pub max_files_per_request: u32,
    /// Bytes one person's uploads may take together.
    pub user_quota_bytes: u64,
    /// Upload requests one person may have in progress at once on one media-svc process (each
    /// holds up to a file's buffers); one more is refused with 429 `too_many_uploads`.
    pub max_uploads_per_user: u32,
    /// Content types that may be uploaded, as decided from the bytes themselves.
    pub allowed_types: Vec<String>,
    /// Largest image (width × height) that is decoded; a larger one is refused as a
    /// decompression bomb.
    pub max_image_pixels: u64,
    /// The longest side of a thumbnail, in pixels.
    pub thumbnail_px: u32,
    /// Images larger than this many bytes get no thumbnail (their decoding would hold too much).
    pub max_thumbnail_source_bytes: u64,
    /// Memory media-svc's thumbnails may hold at once while decoding (bytes). An image takes
    /// its decoded size twice over, read from its header before it is decoded; it waits until
    /// that much is free, and one that needs more than all of it gets no thumbnail (`refused`).
    pub thumbnail_memory_bytes: u64,
    /// Signed links are valid this long at most (seconds); a caller may ask for less.
    pub link_ttl_secs: u64,
    /// Key of the HMAC that signs links. Unset: a random key made once and kept in media-svc's
    /// database (shared by its replicas).
    pub link_secret: Option<SecretString>,
    /// The platform's public base URL, that signed links start with.
    pub public_url: String,
    /// How often the sweep runs (seconds); 0: only when an admin asks.
    pub sweep_interval_secs: u64,
    /// Objects younger than this (seconds) are left alone by the sweep: their upload may still
    /// be running or committing. Must be longer than `transfer_timeout_secs`.
    pub sweep_grace_secs: u64,
    /// Longest time one upload or download may take (seconds).
    pub transfer_timeout_secs: u64,
    /// Size of each part of a multipart upload to the store (at least 5 MiB for S3).
    pub part_bytes: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Local,
            dir: ".taskmesh/media".into(),
            s3_bucket: String::new(),
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            max_file_bytes: 100 * MIB,
            max_files_per_request: 10,
            user_quota_bytes: 1024 * MIB,
            allowed_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "text/plain",
                "text/csv",
                "application/zip",
            ]
            .map(String::from)
            .to_vec(),
            max_image_pixels: 50_000_000,
            thumbnail_px: 256,
            max_thumbnail_source_bytes: 50 * MIB,
            max_uploads_per_user: 4,
            thumbnail_memory_bytes: 512 * MIB,
            link_ttl_secs: 900,
            link_secret: None,
            public_url: "http://127.0.0.1:8080".into(),
            sweep_interval_secs: 3600,
            sweep_grace_secs: 7200,
            transfer_timeout_secs: 3600,
            part_bytes: 8 * MIB as usize,
        }
    }
}

impl FilesConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let files = self;
        if files.store == StoreKind::S3 && files.s3_bucket.is_empty() {
            return Err(ConfigError("files.store = s3 needs files.s3_bucket".into()));
        }
        if files.max_file_bytes == 0 || files.max_files_per_request == 0 {
            return Err(ConfigError(
                "files.max_file_bytes and files.max_files_per_request must be at least 1".into(),
            ));
        }
        if files.thumbnail_memory_bytes < MIB || files.max_uploads_per_user == 0 {
            return Err(ConfigError(
                "files.thumbnail_memory_bytes must be at least 1 MiB and \
                 files.max_uploads_per_user at least 1"
                    .into(),
            ));
        }
        if files.link_ttl_secs == 0 || files.link_ttl_secs > 7 * 24 * 3600 {
            return Err(ConfigError(
                "files.link_ttl_secs must be between 1 and 604800 (a week)".into(),
            ));
        }
        if files.part_bytes < 5 * MIB as usize {
            return Err(ConfigError(
                "files.part_bytes must be at least 5 MiB (S3's smallest part)".into(),
            ));
        }
        if files.sweep_grace_secs <= files.transfer_timeout_secs {
            return Err(ConfigError(
            "files.sweep_grace_secs must be longer than files.transfer_timeout_secs (an upload \
             still in progress would be swept)"
                .into(),
        ));
        }
        url::Url::parse(&files.public_url)
            .map_err(|e| ConfigError(format!("files.public_url is not a URL: {e}")))?;
        Ok(())
    }
}
