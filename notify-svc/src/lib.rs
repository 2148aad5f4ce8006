//! notify-svc: notifications. Owns the `taskmesh_notify` database and consumes `user.created`,
//! `task.*`, `channel.*` and `media.processed` from its queue `<ns>.notify-svc`.
//!
//! # Layout
//! - [`events`]: the consumer that turns events into notifications, once per event.
//! - [`notifications`]: the notification resource.

pub mod events;
pub mod notifications;

use axum::Router;
use shared::{consumer::Consumer, startup::Platform, topology, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "notify-svc";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/notify");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

/// This service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(notifications::list),
    tags((name = "notifications", description = "In-app notifications"))
)]
pub struct ApiDoc;

/// Runs notify-svc on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut platform = Platform::start(
        &config,
        SERVICE,
        &config.notify.database,
        &MIGRATIONS,
        &shutdown,
    )
    .await?;
    let consumer = Consumer::new(
        platform.broker.clone(),
        topology::notify_queue(&platform.broker, &config.consumer),
        events::NotificationHandler {
            pool: platform.pool.clone(),
        },
    );
    platform.spawn(consumer.run_batched(256, shutdown.clone()));
    let app = Router::new()
        .merge(notifications::router())
        .with_state(AppState {
            pool: platform.pool.clone(),
        })
        .merge(shared::health::openapi_router(
            <ApiDoc as utoipa::OpenApi>::openapi(),
        ));
    let readiness = platform.readiness();
    platform.serve(listener, app, readiness, shutdown).await
}
