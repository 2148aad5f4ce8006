//! Start-up helpers: waiting for dependencies and the common `main` of every service binary.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use secrecy::ExposeSecret;

use crate::config::Config;

pub use crate::unreachable::retry;

/// The whole `main` of a service binary: config, telemetry, listener, signals, then `run`.
pub async fn service_main<F, Fut>(
    service: &str,
    bind: impl FnOnce(&Config) -> std::net::SocketAddr,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Config, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = Config::load()?;
    crate::telemetry::init(&config.log)?;
    let addr = bind(&config);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{service} cannot listen on {addr}: {e}"))?;
    tracing::info!(service, %addr, "listening");
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let outcome = run(config, listener, shutdown).await;
    // The spans of the last moments, before the process ends.
    crate::trace::export::flush(Duration::from_secs(5)).await;
    outcome
}

/// The pieces every service with a database runs: its pool (migrated), a broker handle and the
/// outbox relay.
pub struct Platform {
    pub service: &'static str,
    pub pool: sqlx::PgPool,
    pub broker: crate::broker::Broker,
    /// Checks the assertion on every request to this service, and makes them for its own calls
    /// to other services.
    pub trust: std::sync::Arc<crate::internal::Trust>,
    /// Background loops (relay, consumers) awaited before the pool closes.
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Platform {
    /// Connects to the service's database (waiting for PostgreSQL), migrates it, declares the
    /// RabbitMQ topology (waiting for the broker) and starts the outbox relay.
    pub async fn start(
        config: &Config,
        service: &'static str,
        database: &str,
        migrations: &sqlx::migrate::Migrator,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let trust = crate::internal::Trust::from_config(service, &config.internal)?;
        let pool = crate::db::connect(&config.postgres, database, migrations, shutdown).await?;
        let broker = crate::broker::Broker::new(&config.amqp, service);
        // Declare every consumer queue before the relay publishes anything, so no event is
        // unroutable just because its consumer has not started yet.
        retry(
            "rabbitmq",
            config.amqp.url.expose_secret(),
            shutdown,
            || async {
                let channel = broker.channel().await?;
                crate::topology::declare_all(&broker, &channel, &config.consumer).await?;
                channel.close(200, "declared").await?;
                Ok(())
            },
        )
        .await?;
        // Only ever turned on: services sharing a process (`taskmesh up`) all write alike.
        if config.outbox.group_rows {
            crate::outbox::set_grouping(true);
        }
        let relay = crate::outbox::Relay::new(
            pool.clone(),
            crate::broker::Publisher::new(broker.clone()),
            config.outbox.clone(),
        )
        .batching(service);
        let lag = crate::outbox::lag::report(pool.clone(), service, shutdown.clone());
        Ok(Self {
            service,
            pool,
            broker,
            trust: std::sync::Arc::new(trust),
            background: vec![tokio::spawn(relay.run(shutdown.clone())), tokio::spawn(lag)],
        })
    }

    /// Runs a background loop (a consumer) that `serve` waits for at shutdown.
    pub fn spawn(&mut self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        self.background.push(tokio::spawn(work));
    }

    /// Readiness on the database and the broker; add the service's own checks to it.
    pub fn readiness(&self) -> crate::health::Readiness {
        crate::health::Readiness::new(self.service)
            .postgres(self.pool.clone())
            .rabbitmq(self.broker.clone())
    }

    /// Serves `app` (with the health routes and common layers) until `shutdown`, then waits for
    /// the background loops to drain and closes the pool.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: axum::Router,
        readiness: crate::health::Readiness,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.serve_with_timeout(listener, app, readiness, shutdown, REQUEST_TIMEOUT)
            .await
    }

    /// [`Platform::serve`] with another limit on each request than [`REQUEST_TIMEOUT`] (a
    /// service whose requests carry files).
    pub async fn serve_with_timeout(
        self,
        listener: TcpListener,
        app: axum::Router,
        readiness: crate::health::Readiness,
        shutdown: CancellationToken,
        request_timeout: Duration,
    ) -> anyhow::Result<()> {
        let app = finish_router_with(app, readiness, request_timeout, Some(self.trust.clone()));
        crate::http::serve(listener, app, shutdown).await?;
        for task in self.background {
            task.await?;
        }
        self.broker.close().await;
        self.pool.close().await;
        Ok(())
    }
}

/// The longest a request may take, unless a service says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Adds the problem+json fallback, the health routes and the common layers.
pub fn finish_router(app: axum::Router, readiness: crate::health::Readiness) -> axum::Router {
    finish_router_with(app, readiness, REQUEST_TIMEOUT, None)
}

/// [`finish_router`] with another limit on each request and, for a service, the check of every
/// request's assertion.
fn finish_router_with(
    app: axum::Router,
    readiness: crate::health::Readiness,
    request_timeout: Duration,
    trust: Option<std::sync::Arc<crate::internal::Trust>>,
) -> axum::Router {
    let service = readiness.service();
    let mut app = app
        .fallback(crate::problem::not_found_fallback)
        .merge(crate::health::router(readiness));
    if let Some(trust) = trust {
        app = app.layer(axum::middleware::from_fn_with_state(
            trust,
            crate::internal::require,
        ));
    }
    crate::http::with_common_layers(app, service, request_timeout)
}

/// The keys a service seals what it keeps with (`sealing.key`, or one derived from
/// `internal.secret`), or an error that says what to set.
pub fn at_rest(config: &Config) -> anyhow::Result<crate::seal::AtRest> {
    crate::seal::AtRest::from_config(config).map_err(|_| {
        anyhow::anyhow!(
            "sealing.key (TASKMESH_SEALING__KEY) or internal.secret must be set: the secrets this service keeps are sealed with it; `openssl rand -base64 32` makes one"
        )
    })
}
