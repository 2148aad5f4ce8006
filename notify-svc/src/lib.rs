//! notify-svc: notifications. Owns the `taskmesh_notify` database; consumes the events that
//! concern people (`user.*`, `task.*`, `workflow.failed`, `channel.joined`) from its queue
//! `<ns>.notify-svc` and tells them in-app, by email, by webhook and by SMS, as they chose.
//!
//! # Layout (dependencies run one way: http, consumers, background → service → domain, store)
//! - [`domain`]: kinds, channels and their defaults; who hears about what.
//! - [`store`]: SQL for notifications, preferences, the users read model and outgoing messages.
//! - [`service`]: the use cases (fan an event out, change preferences, sign links).
//! - [`channels`]: how a message leaves: mail (SMTP or `.eml` files), SMS.
//! - [`consumers`]: the event fan-out and the mail and SMS queues.
//! - [`background`]: the digest of mail held back by the hourly cap.
//! - [`webhooks`]: endpoints, signed deliveries and their retries.
//! - [`http`]: the REST routes, each declared once by its handler's `#[utoipa::path]`.

pub mod background;
pub mod channels;
pub mod consumers;
pub mod domain;
pub mod http;
pub mod service;
pub mod store;
pub mod webhooks;

use std::sync::Arc;

use shared::{consumer::Consumer, seal::AtRest, startup::Platform, topology, Config};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const SERVICE: &str = "notify-svc";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/notify");

/// What handlers, consumers and loops share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    /// Signs and checks unsubscribe links.
    pub links: Arc<service::links::Signer>,
    /// Claims on mail and texts to send, batched.
    pub claims: service::claims::Claims,
    /// Seals the webhook secrets and the link key kept in the database.
    pub at_rest: Arc<AtRest>,
}

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
    let at_rest = shared::startup::at_rest(&config)?;
    for column in ["secret", "previous_secret"] {
        shared::db::reseal_column(&platform.pool, &at_rest, "webhook_endpoints", column).await?;
    }
    let links =
        service::links::Signer::load(&platform.pool, &at_rest, &config.notifications).await?;
    let state = AppState {
        pool: platform.pool.clone(),
        config: Arc::new(config.clone()),
        links: Arc::new(links),
        claims: service::claims::Claims::start(platform.pool.clone()),
        at_rest: Arc::new(at_rest),
    };
    let mailer = Arc::new(channels::mail::Mailer::from_config(&config.smtp)?);
    if let channels::mail::Mailer::Files { dir, .. } = mailer.as_ref() {
        tracing::info!(dir = %dir.display(), "no smtp.url: mail is written as .eml files");
    }
    let sms = channels::sms::from_config(&config.sms)?;
    let events = Consumer::new(
        platform.broker.clone(),
        topology::notify_queue(&platform.broker, &config.consumer),
        consumers::events::FanOut {
            state: state.clone(),
        },
    );
    platform.spawn(events.run_batched(64, shutdown.clone()));
    let mail = Consumer::new(
        platform.broker.clone(),
        topology::notify_mail_queue(&platform.broker, &config.consumer),
        consumers::mail::MailSender {
            state: state.clone(),
            mailer: mailer.clone(),
        },
    )
    // Twice the sends at once (with the default prefetch, 128 commands for 64 sends): claims
    // are made while others send.
    .with_prefetch(config.amqp.prefetch.saturating_mul(2));
    platform.spawn(mail.run(shutdown.clone()));
    let texts = Consumer::new(
        platform.broker.clone(),
        topology::notify_sms_queue(&platform.broker, &config.consumer),
        consumers::sms::SmsSender {
            state: state.clone(),
            provider: sms,
        },
    );
    platform.spawn(texts.run(shutdown.clone()));
    platform.spawn(background::digest::run(
        state.clone(),
        mailer,
        shutdown.clone(),
    ));
    platform.spawn(webhooks::run(state.clone(), shutdown.clone()));
    platform.spawn(background::gauges::run(
        state.pool.clone(),
        shutdown.clone(),
    ));
    let (routes, api) = http::router();
    let app = routes
        .with_state(state)
        .merge(shared::health::openapi_router(api));
    let readiness = platform.readiness();
    platform.serve(listener, app, readiness, shutdown).await
}
