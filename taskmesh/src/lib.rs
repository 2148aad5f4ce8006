//! The Taskmesh launcher: starts every service (or one) in this process from one config.
//!
//! `taskmesh up` is the local all-in-one start; `taskmesh serve <service>` runs one service the
//! way its own binary does. Tests start a [`Stack`] on port 0 against a test environment.
//!
//! # Layout
//! - this file: [`Stack`], the set of running services.
//! - [`worker_amqp_user`]: `taskmesh worker-amqp-user`, the workers' own RabbitMQ user.
//! - `main.rs`: the command line.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use shared::Config;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod worker_amqp_user;

/// The six services, in start order (the gateway last, once the rest listen).
pub const SERVICES: [&str; 6] = [
    "user-svc",
    "task-svc",
    "notify-svc",
    "media-svc",
    "worker",
    "api-gateway",
];

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Starts `service` on `listener`.
pub fn run_service(
    service: &str,
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<RunFuture> {
    Ok(match service {
        "user-svc" => Box::pin(user_svc::run(config, listener, shutdown)),
        "task-svc" => Box::pin(task_svc::run(config, listener, shutdown)),
        "notify-svc" => Box::pin(notify_svc::run(config, listener, shutdown)),
        "media-svc" => Box::pin(media_svc::run(config, listener, shutdown)),
        "worker" => Box::pin(worker::run(config, listener, shutdown)),
        "api-gateway" => Box::pin(api_gateway::run(config, listener, shutdown)),
        other => anyhow::bail!("unknown service {other:?}; one of {SERVICES:?}"),
    })
}

/// The configured bind address of `service`.
pub fn bind_address(config: &Config, service: &str) -> anyhow::Result<SocketAddr> {
    Ok(section(&mut config.clone(), service)?.bind)
}

fn section<'a>(
    config: &'a mut Config,
    service: &str,
) -> anyhow::Result<&'a mut shared::config::ServiceConfig> {
    Ok(match service {
        "user-svc" => &mut config.user,
        "task-svc" => &mut config.task,
        "notify-svc" => &mut config.notify,
        "media-svc" => &mut config.media,
        "worker" => &mut config.worker,
        "api-gateway" => &mut config.gateway,
        other => anyhow::bail!("unknown service {other:?}; one of {SERVICES:?}"),
    })
}

/// Every service, running in this process.
pub struct Stack {
    /// The effective config: bind addresses and URLs are the ones actually listening.
    pub config: Config,
    shutdown: CancellationToken,
    services: Vec<Running>,
    /// The workers' own credentials ([`Stack::with_worker_credentials`]).
    worker: WorkerCredentials,
}

/// Credentials of the workers' own, in place of the services' (`None` keeps the services').
#[derive(Debug, Clone, Default)]
pub struct WorkerCredentials {
    /// A Redis user with the rules of `taskmesh worker-acl`.
    pub redis_url: Option<secrecy::SecretString>,
    /// A RabbitMQ user with `shared::topology::worker_permissions`.
    pub amqp_url: Option<secrecy::SecretString>,
}

/// One service task and the token that stops just it.
struct Running {
    name: &'static str,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Stack {
    /// Binds every service's listener (port 0 picks a free port) and starts them all.
    pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        Self::with_worker_credentials(config, WorkerCredentials::default(), shutdown).await
    }

    /// As [`Stack::start`], the worker connecting to Redis and RabbitMQ as its own users.
    pub async fn with_worker_credentials(
        mut config: Config,
        worker: WorkerCredentials,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        // Every service runs here, so they can share a secret made for this run alone.
        if config.internal.secret.is_none() {
            config.internal.secret = Some(shared::internal::generate_secret());
        }
        // One process, one version: no relay of an earlier version can meet a group row.
        config.outbox.group_rows = true;
        let mut listeners = Vec::new();
        for service in SERVICES {
            let section = section(&mut config, service)?;
            let listener = TcpListener::bind(section.bind)
                .await
                .map_err(|e| anyhow::anyhow!("{service} cannot listen on {}: {e}", section.bind))?;
            let addr = listener.local_addr()?;
            section.bind = addr;
            section.url = format!("http://{addr}");
            listeners.push((service, listener));
        }
        let mut stack = Self {
            config,
            shutdown,
            services: Vec::new(),
            worker,
        };
        for (service, listener) in listeners {
            stack.launch(service, listener)?;
        }
        Ok(stack)
    }

    /// Runs `service` on `listener` with its config.
    fn launch(&mut self, service: &'static str, listener: TcpListener) -> anyhow::Result<()> {
        let mut config = self.config.clone();
        if service == worker::SERVICE {
            if let Some(url) = &self.worker.redis_url {
                config.redis.url = url.clone();
            }
            if let Some(url) = &self.worker.amqp_url {
                config.amqp.url = url.clone();
            }
        }
        let stop = self.shutdown.child_token();
        let run = run_service(service, config, listener, stop.clone())?;
        self.services.push(Running {
            name: service,
            stop,
            handle: tokio::spawn(run),
        });
        Ok(())
    }

    /// The gateway's base URL.
    pub fn api_url(&self) -> String {
        self.config.gateway.url.clone()
    }

    /// Waits until every service answers `/readyz` with 200, or fails naming those that do not.
    pub async fn wait_ready(&self, deadline: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            let mut waiting = Vec::new();
            for service in SERVICES {
                let base = section(&mut self.config.clone(), service)?.url.clone();
                let ready = http
                    .get(format!("{base}/readyz"))
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ready {
                    waiting.push(service);
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if let Some(r) = self.services.iter().find(|r| r.handle.is_finished()) {
                anyhow::bail!("{} stopped during start-up; see its log above", r.name);
            }
            if started.elapsed() > deadline {
                anyhow::bail!("not ready after {deadline:?}: {}", waiting.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Resolves when the first service stops by itself, with its name and result; that service
    /// leaves the stack.
    pub async fn first_exit(&mut self) -> (&'static str, anyhow::Result<()>) {
        loop {
            if let Some(i) = self.services.iter().position(|r| r.handle.is_finished()) {
                let running = self.services.remove(i);
                let result = match running.handle.await {
                    Ok(result) => result,
                    Err(join) => Err(anyhow::anyhow!("panicked: {join}")),
                };
                return (running.name, result);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops one service (as if its process ended) and waits until it has.
    pub async fn stop_service(&mut self, service: &str) -> anyhow::Result<()> {
        let i = self
            .services
            .iter()
            .position(|r| r.name == service)
            .ok_or_else(|| anyhow::anyhow!("{service} is not running"))?;
        let running = self.services.remove(i);
        running.stop.cancel();
        running.handle.await??;
        Ok(())
    }

    /// Starts a stopped service again on its previous address.
    pub async fn start_service(&mut self, service: &'static str) -> anyhow::Result<()> {
        let addr = bind_address(&self.config, service)?;
        let listener = TcpListener::bind(addr).await?;
        self.launch(service, listener)
    }

    /// Signals shutdown and waits for every service to drain and stop.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let mut failures = Vec::new();
        for Running { name, handle, .. } in self.services {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => failures.push(format!("{name}: {err:#}")),
                Err(err) => failures.push(format!("{name}: {err}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("services failed while stopping: {}", failures.join("; "))
        }
    }
}
