//! task-svc: tasks. Owns the `taskmesh_tasks` database and publishes `task.*` events through
//! its outbox, whose relay runs here.
//!
//! # Layout
//! Layered, dependencies one way: [`http`], [`consumers`] and [`background`] call [`service`],
//! which uses [`domain`] (pure rules and types, no I/O), [`store`] (all SQL, returning
//! `sqlx::Error`) and [`infra`] (Redis and RabbitMQ). [`error::TaskError`] is the layers' one
//! error, mapped once to problem+json and once to a consumer's retry, reject or wait.
//!
//! - Where a task's visibility is decided: [`domain::task::Access::of`] (the rule), checked by
//!   every route through [`service::tasks::visible`].
//! - Where a job is completed: [`service::job_reports::complete_many`] (the one rule).
//! - Tasks: created (one or in bulk) in [`service::create`], listed in [`service::query`],
//!   read, changed and deleted in [`service::tasks`]; their fields' rules in [`domain::task`],
//!   the status machine in [`domain::status`], the due-soon reminder in [`domain::reminder`].
//! - Jobs: their types and checks in [`domain::job`], their events in [`domain::events`];
//!   dispatch and cancel in [`service::jobs`], workers' reports in [`service::job_reports`]
//!   (fed by [`consumers::job_reports`]), cron runs in [`service::cron`] (driven by
//!   [`background::cron`]), stopping in [`service::stop`], the dead list in [`service::dead`],
//!   operators' search and retry-now in [`service::operations`], quotas in [`domain::quota`]
//!   and [`service::quotas`].
//! - Pools: depth, activity and pauses in [`service::pools`] and [`http::pools`].
//! - Channels in [`service::channels`]; the read model of users in [`service::users`] (fed by
//!   [`consumers::users`]); priority prediction in [`domain::priority`] and
//!   [`service::priority`]; the cached first page of task lists in [`infra::list_cache`].
//! - Routes other services call (a task's access, its audience): [`http::internal`].
//! - A task's status (for an automated task, its job's state) and priority, typed:
//!   [`domain::status::Status`], [`domain::task::Priority`]. Every route is declared once, by
//!   its handler's `#[utoipa::path]`, and put together in [`router`].

pub mod background;
pub mod consumers;
pub mod domain;
pub mod error;
pub mod http;
pub mod infra;
pub mod service;
pub mod store;

use shared::{startup::Platform, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "task-svc";

/// Most workers' reports applied in one transaction.
const REPORT_BATCH: usize = 256;
/// How long a batch of reports waits for more after its first: fewer, larger completion
/// transactions, and so fewer relay rounds and event batches per job (docs/benchmarks.md).
const REPORT_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/tasks");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: std::sync::Arc<Config>,
    pub cache: crate::infra::list_cache::ListCache,
    /// Worker pools whose queues this process declared.
    pub pools: infra::amqp_pools::Pools,
    /// Single creations that arrive together share a transaction.
    pub group_commit: service::group_commit::GroupCommit,
}

/// This service's part of the API description: its tags; the operations come from the routes
/// themselves ([`router`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "tasks", description = "Tasks"),
        (name = "jobs", description = "Automated tasks: runs, cancel, dead letters, workers"),
        (name = "channels", description = "Channels: tasks shared by join code"),
        (name = "workflows", description = "Workflows: graphs of steps, each a job"),
        (name = "people", description = "People by name: for a person picker and for showing who")
    )
)]
pub struct ApiDoc;

/// Every route and the API description of the documented ones: each route is declared once,
/// by its handler's `#[utoipa::path]`.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    utoipa_axum::router::OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(http::tasks::router())
        .merge(http::calendar::router())
        .merge(http::people::router())
        .merge(http::comments::router())
        .merge(http::labels::router())
        .merge(http::related::router())
        .merge(http::watchers::router())
        .merge(http::channels::router())
        .merge(http::jobs::router())
        .merge(http::operations::router())
        .merge(http::cron::router())
        .merge(http::pools::router())
        .merge(http::workflows::router())
        .merge(http::internal::router())
        .split_for_parts()
}

/// Runs task-svc on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut platform = Platform::start(
        &config,
        SERVICE,
        &config.task.database,
        &MIGRATIONS,
        &shutdown,
    )
    .await?;
    let redis = shared::cache::connect(&config.redis, &shutdown).await?;
    let list_cache = crate::infra::list_cache::ListCache {
        redis: redis.clone(),
        prefix: config.redis.key_prefix.clone(),
        ttl_secs: config.tasks.list_cache_secs,
    };
    let consumer = shared::consumer::Consumer::new(
        platform.broker.clone(),
        shared::topology::task_queue(&platform.broker, &config.consumer),
        consumers::users::UserEvents {
            pool: platform.pool.clone(),
            cache: list_cache.clone(),
        },
    )
    // Each handler holds a transaction: a backlog takes at most half the pool from the API.
    .with_concurrency(shared::db::background_share(&config.postgres));
    platform.spawn(consumer.run(shutdown.clone()));
    let reports = shared::consumer::Consumer::new(
        platform.broker.clone(),
        shared::topology::job_reports_queue(&platform.broker, &config.consumer),
        consumers::job_reports::JobReports {
            pool: platform.pool.clone(),
            cache: list_cache.clone(),
            config: config.jobs.clone(),
        },
    )
    .with_linger(REPORT_LINGER);
    platform.spawn(reports.run_batched(REPORT_BATCH, shutdown.clone()));
    platform.spawn(background::limits::run_sweep(
        platform.pool.clone(),
        shutdown.clone(),
    ));
    platform.spawn(background::cron::run_cron(
        platform.pool.clone(),
        list_cache.clone(),
        config.jobs.clone(),
        shutdown.clone(),
    ));
    platform.spawn(background::pool_mirror::mirror_periodically(
        platform.pool.clone(),
        redis.clone(),
        config.redis.key_prefix.clone(),
        shutdown.clone(),
    ));
    platform.spawn(background::retrain::retrain_periodically(
        platform.pool.clone(),
        shutdown.clone(),
    ));
    let (routes, api) = router();
    let config = std::sync::Arc::new(config.clone());
    let group_commit = service::group_commit::GroupCommit::start(
        platform.pool.clone(),
        config.clone(),
        list_cache.clone(),
    );
    let state = AppState {
        pool: platform.pool.clone(),
        config,
        cache: list_cache.clone(),
        pools: infra::amqp_pools::Pools::new(platform.broker.clone()),
        group_commit,
    };
    platform.spawn(background::gauges::run(state.clone(), shutdown.clone()));
    let app = routes
        .with_state(state)
        .merge(shared::health::openapi_router(api));
    let readiness = platform.readiness().redis(redis);
    platform.serve(listener, app, readiness, shutdown).await
}
