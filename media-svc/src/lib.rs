//! media-svc: uploads and signed URLs. Owns the `taskmesh_media` database (the catalogue of
//! stored objects). This first version lists the caller's objects; uploads, the object store and
//! signed URLs come with the media issue.
//!
//! # Layout
//! - this file: start-up and the media resource.

use axum::{extract::State, routing::get, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, startup::Platform, ApiError, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SERVICE: &str = "media-svc";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/media");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MediaObject {
    pub id: Uuid,
    pub task_id: Option<Uuid>,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaList {
    pub items: Vec<MediaObject>,
}

/// This service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), tags((name = "media", description = "Uploads")))]
pub struct ApiDoc;

/// Runs media-svc on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let platform = Platform::start(
        &config,
        SERVICE,
        &config.media.database,
        &MIGRATIONS,
        &shutdown,
    )
    .await?;
    let app = Router::new()
        .route("/api/v1/media", get(list))
        .with_state(AppState {
            pool: platform.pool.clone(),
        })
        .merge(shared::health::openapi_router(
            <ApiDoc as utoipa::OpenApi>::openapi(),
        ));
    let readiness = platform.readiness();
    platform.serve(listener, app, readiness, shutdown).await
}

#[utoipa::path(get, path = "/api/v1/media", tag = "media", security(("bearer" = [])),
    responses((status = 200, description = "The caller's uploaded objects", body = MediaList),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<MediaList>, ApiError> {
    let items = sqlx::query_as(
        "SELECT id, task_id, filename, content_type, size_bytes, created_at
           FROM media_objects WHERE owner_id = $1 ORDER BY created_at DESC LIMIT 100",
    )
    .bind(identity.user_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(MediaList { items }))
}
