//! media-svc: files attached to tasks. Owns the `taskmesh_media` database (the catalogue of
//! stored files and their thumbnails) and the object store that holds the bytes (a local folder
//! by default, S3-compatible storage by configuration). Uploads stream into the store as they
//! arrive; who may see or change a task's files is asked of task-svc; `media.uploaded` makes
//! thumbnails, `task.deleted` removes a task's files, and a sweep reconciles store and catalogue.
//!
//! # Layout (dependencies run one way: http, consumers, background → service → domain, store)
//! - [`domain`]: file names, content types from the bytes, byte ranges, object keys.
//! - [`store`]: the SQL of the catalogue.
//! - [`blobs`]: the object store.
//! - [`service`]: uploads, downloads, links, access, thumbnails, cleanup and the sweep.
//! - [`consumers`]: `media.uploaded` and `task.deleted`.
//! - [`background`]: the periodic sweep.
//! - [`http`]: the REST routes, each declared once by its handler's `#[utoipa::path]`.

pub mod background;
pub mod blobs;
pub mod consumers;
pub mod domain;
pub mod http;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use shared::{consumer::Consumer, startup::Platform, topology, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "media-svc";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/media");

/// What handlers, consumers and loops share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub blobs: blobs::Blobs,
    pub tasks: service::access::Tasks,
    pub links: Arc<service::links::Signer>,
    /// The memory thumbnails may hold at once (`files.thumbnail_memory_bytes`).
    pub decode_memory: service::memory::DecodeMemory,
    /// Uploads in progress per person (`files.max_uploads_per_user`).
    pub uploads: service::in_progress::InProgress,
}

/// Runs media-svc on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let blobs = blobs::Blobs::from_config(&config.files)?;
    tracing::info!(store = %blobs.describe, "files are stored here");
    let mut platform = Platform::start(
        &config,
        SERVICE,
        &config.media.database,
        &MIGRATIONS,
        &shutdown,
    )
    .await?;
    let at_rest = shared::startup::at_rest(&config)?;
    let links = service::links::Signer::load(&platform.pool, &at_rest, &config.files).await?;
    let state = AppState {
        pool: platform.pool.clone(),
        config: Arc::new(config.clone()),
        blobs,
        tasks: service::access::Tasks::new(&config.task.url, platform.trust.clone()),
        links: Arc::new(links),
        decode_memory: service::memory::DecodeMemory::new(config.files.thumbnail_memory_bytes),
        uploads: service::in_progress::InProgress::new(config.files.max_uploads_per_user),
    };
    let events = Consumer::new(
        platform.broker.clone(),
        topology::media_queue(&platform.broker, &config.consumer),
        consumers::MediaEvents {
            state: state.clone(),
        },
    )
    // Thumbnails decode whole images and write to the database: a backlog of uploads runs a
    // few at a time and leaves the API at least half the pool.
    .with_concurrency(shared::db::background_share(&config.postgres));
    platform.spawn(events.run(shutdown.clone()));
    platform.spawn(background::sweep_periodically(
        state.clone(),
        shutdown.clone(),
    ));
    let store = state.blobs.clone();
    let (routes, api) = http::router();
    let app = routes
        .with_state(state)
        .merge(shared::health::openapi_router(api));
    let readiness = platform.readiness().check("object store", move || {
        let store = store.clone();
        async move {
            match tokio::time::timeout(Duration::from_secs(2), store.exists("readyz")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 2 s".to_string()),
            }
        }
    });
    let timeout = Duration::from_secs(config.files.transfer_timeout_secs);
    platform
        .serve_with_timeout(listener, app, readiness, shutdown, timeout)
        .await
}
