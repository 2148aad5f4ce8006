//! Taskmesh as separate processes (`taskmesh serve <service>`), each reaching each of its
//! dependencies through its own [`FaultProxy`], so one process can be `kill -9`ed and started
//! again and one (service, dependency) pair can be slowed down or reset.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::infra;
use crate::proxy::FaultProxy;

/// A dependency a service reaches through a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dep {
    Postgres,
    Rabbitmq,
    Redis,
    /// notify-svc's SMTP server (the aiosmtpd sink, [`crate::smtp`]).
    Smtp,
    /// The webhook receiver the peer user registered ([`crate::receiver::Hooks`]).
    Webhook,
    /// media-svc's object store (`s3s-fs`, [`crate::objects::S3Store`]).
    S3,
}

/// Where the dependencies that are not the infrastructure's listen.
#[derive(Clone, Copy, Debug)]
pub struct Outside {
    pub smtp: SocketAddr,
    pub hooks: SocketAddr,
    pub s3: SocketAddr,
}

impl Dep {
    pub fn name(self) -> &'static str {
        match self {
            Dep::Postgres => "postgres",
            Dep::Rabbitmq => "rabbitmq",
            Dep::Redis => "redis",
            Dep::Smtp => "smtp",
            Dep::Webhook => "webhook",
            Dep::S3 => "s3",
        }
    }

    fn upstream(self, outside: Outside) -> SocketAddr {
        match self {
            Dep::Postgres => infra::pg_addr(),
            Dep::Rabbitmq => infra::amqp_addr(),
            Dep::Redis => infra::redis_addr(),
            Dep::Smtp => outside.smtp,
            Dep::Webhook => outside.hooks,
            Dep::S3 => outside.s3,
        }
    }
}

/// One process of the deployment.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Process name in the report (`worker-a`).
    pub name: &'static str,
    /// `taskmesh serve <service>`.
    pub service: &'static str,
    /// The `TASKMESH_<SECTION>__*` section of its bind address.
    pub section: &'static str,
    pub deps: &'static [Dep],
}

/// The deployment: every service once, two workers (so one can die while the other runs jobs).
pub const SERVICES: [ServiceSpec; 7] = [
    ServiceSpec {
        name: "user-svc",
        service: "user-svc",
        section: "USER",
        deps: &[Dep::Postgres, Dep::Rabbitmq, Dep::Redis],
    },
    ServiceSpec {
        name: "task-svc",
        service: "task-svc",
        section: "TASK",
        deps: &[Dep::Postgres, Dep::Rabbitmq, Dep::Redis],
    },
    ServiceSpec {
        name: "notify-svc",
        service: "notify-svc",
        section: "NOTIFY",
        deps: &[Dep::Postgres, Dep::Rabbitmq, Dep::Smtp, Dep::Webhook],
    },
    ServiceSpec {
        name: "media-svc",
        service: "media-svc",
        section: "MEDIA",
        deps: &[Dep::Postgres, Dep::Rabbitmq, Dep::S3],
    },
    ServiceSpec {
        name: "worker-a",
        service: "worker",
        section: "WORKER",
        deps: &[Dep::Rabbitmq, Dep::Redis],
    },
    ServiceSpec {
        name: "worker-b",
        service: "worker",
        section: "WORKER",
        deps: &[Dep::Rabbitmq, Dep::Redis],
    },
    ServiceSpec {
        name: "api-gateway",
        service: "api-gateway",
        section: "GATEWAY",
        // RabbitMQ: the live stream's feed.
        deps: &[Dep::Rabbitmq, Dep::Redis],
    },
];

/// The proxy pairs faults apply to: the workers share theirs (the pair is the service kind).
pub fn proxy_pairs() -> Vec<(&'static str, Dep)> {
    let mut pairs = Vec::new();
    for spec in &SERVICES {
        for dep in spec.deps {
            if !pairs.contains(&(spec.service, *dep)) {
                pairs.push((spec.service, *dep));
            }
        }
    }
    pairs
}

/// The running deployment.
pub struct Stack {
    bin: PathBuf,
    logs: PathBuf,
    /// Settings shared by every process (URLs, limits).
    common: Vec<(String, String)>,
    binds: BTreeMap<&'static str, SocketAddr>,
    pub proxies: BTreeMap<(&'static str, Dep), FaultProxy>,
    children: BTreeMap<&'static str, Child>,
    http: reqwest::Client,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

impl Stack {
    /// Starts the proxies and every process, and waits until all are ready. `outside` names
    /// the SMTP server notify-svc mails through, the webhook receiver and media-svc's S3 server
    /// (each behind a proxy).
    pub async fn start(
        bin: &Path,
        dir: &Path,
        receiver_host: &str,
        outside: Outside,
    ) -> anyhow::Result<Self> {
        let mut proxies = BTreeMap::new();
        for (service, dep) in proxy_pairs() {
            let proxy =
                FaultProxy::start(format!("{service}→{}", dep.name()), dep.upstream(outside))
                    .await?;
            proxies.insert((service, dep), proxy);
        }
        let mut binds = BTreeMap::new();
        let mut common: Vec<(String, String)> = vec![
            ("TASKMESH_LOG__FORMAT".into(), "json".into()),
            ("TASKMESH_LOG__FILTER".into(), "warn".into()),
            // The services' shared secret (decision 28), made for this run.
            (
                "TASKMESH_INTERNAL__SECRET".into(),
                format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            ),
            // Every process is this version: group rows (decision 35).
            ("TASKMESH_OUTBOX__GROUP_ROWS".into(), "true".into()),
            // One client makes every request: no rate limit gets in the way.
            (
                "TASKMESH_RATE_LIMIT__API_REQUESTS".into(),
                "100000000".into(),
            ),
            (
                "TASKMESH_RATE_LIMIT__AUTH_REQUESTS".into(),
                "100000000".into(),
            ),
            (
                "TASKMESH_WORKERS__HTTP_ALLOW".into(),
                format!("[\"{receiver_host}\"]"),
            ),
            ("TASKMESH_WORKERS__HEARTBEAT_SECS".into(), "1".into()),
            ("TASKMESH_WORKERS__CONCURRENCY".into(), "16".into()),
            // Quick job retries, so a run's recovery is bounded by seconds, not minutes. The
            // event consumers keep their defaults: their retry budget is part of what is tested.
            ("TASKMESH_JOBS__BACKOFF_BASE_MS".into(), "200".into()),
            ("TASKMESH_JOBS__BACKOFF_MAX_MS".into(), "2000".into()),
            ("TASKMESH_JOBS__WORKER_DEAD_AFTER_SECS".into(), "5".into()),
            // The peer that people's tasks are assigned to is mailed about each, over SMTP
            // (`TASKMESH_SMTP__URL`, set per process: the notify-svc→smtp proxy), and gets a
            // webhook for each at the receiver it registered, through the notify-svc→webhook
            // proxy on loopback. Deliveries are retried after 1, 2, 4, 8, 8 and 8 s (31 s in
            // all), so the webhook faults (10 s at most) end well within a delivery's schedule.
            ("TASKMESH_WEBHOOKS__ALLOW".into(), "[\"127.0.0.1\"]".into()),
            (
                "TASKMESH_WEBHOOKS__SCHEDULE_SECS".into(),
                "[0,1,2,4,8,8,8]".into(),
            ),
            ("TASKMESH_WEBHOOKS__TIMEOUT_SECS".into(), "5".into()),
            // A mail's claim lapses after 8 SMTP timeouts and 30 s: with 2 s, a mail whose
            // sender was killed mid-send goes again 46 s later, within the settle deadline.
            ("TASKMESH_SMTP__TIMEOUT_SECS".into(), "2".into()),
            (
                "TASKMESH_NOTIFICATIONS__EMAIL_HOURLY_CAP".into(),
                "1000000".into(),
            ),
            // media-svc keeps every person's task's file on the S3 server
            // (`TASKMESH_FILES__S3_ENDPOINT`, set per process: the media-svc→s3 proxy).
            ("TASKMESH_FILES__SWEEP_INTERVAL_SECS".into(), "0".into()),
        ];
        common.extend(crate::objects::S3Store::settings());
        for spec in &SERVICES {
            let addr = free_port()?;
            binds.insert(spec.name, addr);
            if spec.name != "worker-b" {
                // A section named in the environment is read whole from it: a missing field
                // takes `ServiceConfig::default()` (port 0, no database), not the section's
                // documented default. So each section is given in full.
                let section = spec.section;
                common.push((format!("TASKMESH_{section}__URL"), format!("http://{addr}")));
                common.push((format!("TASKMESH_{section}__BIND"), addr.to_string()));
                let database = match spec.service {
                    "user-svc" => "taskmesh_users",
                    "task-svc" => "taskmesh_tasks",
                    "notify-svc" => "taskmesh_notify",
                    "media-svc" => "taskmesh_media",
                    _ => "",
                };
                common.push((format!("TASKMESH_{section}__DATABASE"), database.into()));
            }
        }
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut stack = Self {
            bin: bin.to_path_buf(),
            logs,
            common,
            binds,
            proxies,
            children: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
        };
        for spec in &SERVICES {
            stack.spawn(spec.name)?;
        }
        stack.wait_ready(Duration::from_secs(120)).await?;
        Ok(stack)
    }

    fn spec(name: &str) -> &'static ServiceSpec {
        SERVICES
            .iter()
            .find(|s| s.name == name)
            .expect("a known process")
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}", self.binds[name])
    }

    pub fn proxy(&self, service: &str, dep: Dep) -> &FaultProxy {
        self.proxies
            .iter()
            .find(|((s, d), _)| *s == service && *d == dep)
            .map(|(_, p)| p)
            .expect("a proxy for this pair")
    }

    /// The URL the peer registers as its webhook endpoint: the receiver, through its proxy.
    pub fn hook_url(&self) -> String {
        format!(
            "http://{}/hook",
            self.proxy("notify-svc", Dep::Webhook).addr
        )
    }

    /// Starts process `name` (again) on its address.
    pub fn spawn(&mut self, name: &'static str) -> anyhow::Result<()> {
        self.spawn_with(name, &[])
    }

    /// Starts process `name` (again) on its address with `extra` variables besides its own.
    pub fn spawn_with(&mut self, name: &'static str, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        let spec = Self::spec(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))?;
        let mut command = Command::new(&self.bin);
        command
            .args(["serve", spec.service])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(
                self.common
                    .iter()
                    // Workers run users' code and hold no credential the services accept.
                    .filter(|(k, _)| spec.service != "worker" || k != "TASKMESH_INTERNAL__SECRET")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env(
                format!("TASKMESH_{}__BIND", spec.section),
                self.binds[name].to_string(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        for dep in spec.deps {
            let proxy = self.proxy(spec.service, *dep).addr;
            let (key, url) = match dep {
                Dep::Postgres => (
                    "TASKMESH_POSTGRES__URL",
                    format!("postgres://postgres@{proxy}"),
                ),
                Dep::Rabbitmq => (
                    "TASKMESH_AMQP__URL",
                    format!("amqp://guest:guest@{proxy}/%2f"),
                ),
                Dep::Redis => ("TASKMESH_REDIS__URL", format!("redis://{proxy}")),
                Dep::Smtp => ("TASKMESH_SMTP__URL", format!("smtp://{proxy}")),
                Dep::S3 => ("TASKMESH_FILES__S3_ENDPOINT", format!("http://{proxy}")),
                // Registered through the API by the peer user: see `Stack::hook_url`.
                Dep::Webhook => continue,
            };
            command.env(key, url);
        }
        if spec.service == "worker" {
            command.env("TASKMESH_WORKERS__ID", name);
        }
        command.envs(extra.iter().copied());
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.children.insert(name, child);
        Ok(())
    }

    /// `kill -9` of process `name`; waits until it is gone.
    pub async fn kill9(&mut self, name: &str) -> anyhow::Result<()> {
        let mut child = self
            .children
            .remove(name)
            .with_context(|| format!("{name} is not running"))?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// SIGTERM to process `name` (a worker hands its unfinished jobs back); waits until it is gone.
    pub async fn terminate(&mut self, name: &str) -> anyhow::Result<()> {
        let mut child = self
            .children
            .remove(name)
            .with_context(|| format!("{name} is not running"))?;
        if let Some(pid) = child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        child.wait().await?;
        Ok(())
    }

    /// Waits (within `deadline`) until process `name` exits by itself, and forgets it.
    pub async fn exit_of(&mut self, name: &str, deadline: Duration) -> anyhow::Result<()> {
        let child = self
            .children
            .get_mut(name)
            .with_context(|| format!("{name} is not running"))?;
        tokio::time::timeout(deadline, child.wait())
            .await
            .with_context(|| format!("{name} did not exit within {deadline:?}"))??;
        self.children.remove(name);
        Ok(())
    }

    /// Names of processes that exited by themselves.
    pub fn exited(&mut self) -> Vec<&'static str> {
        self.children
            .iter_mut()
            .filter_map(|(n, c)| (!matches!(c.try_wait(), Ok(None))).then_some(*n))
            .collect()
    }

    /// Whether every process answers `/readyz` with 200 (the names of those that do not).
    pub async fn not_ready(&self) -> Vec<&'static str> {
        let mut waiting = Vec::new();
        for spec in &SERVICES {
            let ok = self
                .http
                .get(format!("{}/readyz", self.url(spec.name)))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                waiting.push(spec.name);
            }
        }
        waiting
    }

    pub async fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let exited = self.exited();
        if !exited.is_empty() {
            anyhow::bail!(
                "{exited:?} stopped by themselves; see {}",
                self.logs.display()
            );
        }
        let started = std::time::Instant::now();
        loop {
            let waiting = self.not_ready().await;
            if waiting.is_empty() {
                return Ok(());
            }
            if started.elapsed() > deadline {
                anyhow::bail!("not ready after {deadline:?}: {waiting:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every proxy back to a clean pipe.
    pub fn heal_all(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// Kills every process.
    pub async fn stop(mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}
