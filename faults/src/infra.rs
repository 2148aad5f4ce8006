//! Private PostgreSQL, Redis and RabbitMQ instances in a temporary directory, on their own
//! ports, so the suite can stop and restart them without touching the machine's shared ones
//! (other tests use those at the same time).
//!
//! PostgreSQL runs as the `postgres` user (initdb refuses root), RabbitMQ as `rabbitmq` (its
//! Debian wrapper switches to it), each with its own node name, config, data and log
//! directories; Redis is a child process without persistence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::wait_until;

/// Ports of the private instances: away from the shared 5432, 5672 and 6379 and the shared
/// broker's distribution port (25672), and below the kernel's ephemeral range (32768 and up),
/// where a client connection may hold the port (the shared broker's own link to epmd once held
/// 55672, and the suite's broker could not listen).
pub const PG_PORT: u16 = 23432;
pub const REDIS_PORT: u16 = 23379;
pub const AMQP_PORT: u16 = 23672;
const AMQP_DIST_PORT: u16 = 23673;
const RABBIT_NODE: &str = "taskmesh-faults@localhost";

/// The three dependencies, running.
pub struct Infra {
    pub dir: PathBuf,
    pg_bin: PathBuf,
    redis: Option<Child>,
    /// Settings added to the suite's own when PostgreSQL starts.
    pg_options: String,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn pg_addr() -> SocketAddr {
    addr(PG_PORT)
}
pub fn redis_addr() -> SocketAddr {
    addr(REDIS_PORT)
}
pub fn amqp_addr() -> SocketAddr {
    addr(AMQP_PORT)
}

async fn run(what: &str, command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("{what}: cannot run"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether something accepts TCP connections on `addr`.
pub async fn listening(addr: SocketAddr) -> bool {
    tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
        .await
        .is_ok_and(|c| c.is_ok())
}

/// The newest PostgreSQL's binaries.
fn pg_bin() -> anyhow::Result<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL binaries in /usr/lib/postgresql")?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .max_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

impl Infra {
    /// Creates `dir` and starts the three instances; fails when a port is taken.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        for (name, port) in [
            ("PostgreSQL", PG_PORT),
            ("Redis", REDIS_PORT),
            ("RabbitMQ", AMQP_PORT),
        ] {
            if listening(addr(port)).await {
                bail!("port {port} (the suite's private {name}) is in use: is another fault run going on?");
            }
        }
        std::fs::create_dir_all(dir)?;
        let pg_bin = pg_bin()?;
        let mut infra = Self {
            dir: dir.to_path_buf(),
            pg_bin,
            redis: None,
            pg_options: String::new(),
        };
        infra.init_postgres().await?;
        infra.start_postgres().await?;
        infra.start_redis().await?;
        infra.start_rabbitmq().await?;
        Ok(infra)
    }

    /// Only the private PostgreSQL, started with `options` added to the suite's own (`-c
    /// name=value ...`). Stop it with [`Infra::stop_postgres_only`].
    pub async fn postgres_only(dir: &Path, options: &str) -> anyhow::Result<Self> {
        if listening(pg_addr()).await {
            bail!("port {PG_PORT} (the suite's private PostgreSQL) is in use: is a fault run going on?");
        }
        std::fs::create_dir_all(dir)?;
        let infra = Self {
            dir: dir.to_path_buf(),
            pg_bin: pg_bin()?,
            redis: None,
            pg_options: options.to_string(),
        };
        infra.init_postgres().await?;
        infra.start_postgres().await?;
        Ok(infra)
    }

    /// Stops a PostgreSQL started by [`Infra::postgres_only`].
    pub async fn stop_postgres_only(self) -> anyhow::Result<()> {
        self.stop_postgres().await
    }

    fn pg_data(&self) -> PathBuf {
        self.dir.join("pg/data")
    }

    fn as_postgres(&self, program: &str) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(self.pg_bin.join(program));
        command
    }

    async fn init_postgres(&self) -> anyhow::Result<()> {
        let root = self.dir.join("pg");
        std::fs::create_dir_all(root.join("sock"))?;
        run(
            "chown",
            Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&root),
        )
        .await?;
        run(
            "initdb",
            self.as_postgres("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(self.pg_data()),
        )
        .await?;
        Ok(())
    }

    /// `fsync=off` only risks data when the machine itself crashes, which no fault here does;
    /// `synchronous_commit` stays on: an immediate stop would lose commits already
    /// acknowledged to the client.
    pub async fn start_postgres(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {PG_PORT} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=300 {}",
            self.dir.join("pg/sock").display(),
            self.pg_options
        );
        run(
            "pg_ctl start",
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.pg_data())
                .arg("-l")
                .arg(self.dir.join("pg/postgres.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        )
        .await?;
        Ok(())
    }

    /// `pg_ctl stop -m immediate`: every backend dies at once, as in a crash; the next start
    /// recovers from the WAL.
    pub async fn stop_postgres(&self) -> anyhow::Result<()> {
        run(
            "pg_ctl stop",
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.pg_data())
                .args(["-m", "immediate", "-w", "-t", "60", "stop"]),
        )
        .await?;
        Ok(())
    }

    pub async fn start_redis(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &REDIS_PORT.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("redis-server")?;
        self.redis = Some(child);
        wait_until(
            "the private Redis listens",
            Duration::from_secs(30),
            || async { listening(redis_addr()).await.then_some(()) },
        )
        .await
    }

    /// Kills Redis (`kill -9`; it keeps nothing on disk, so it comes back empty).
    pub async fn stop_redis(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.redis.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    fn rabbit_dir(&self) -> PathBuf {
        self.dir.join("rabbitmq")
    }

    fn rabbit(&self, program: &str) -> Command {
        let dir = self.rabbit_dir();
        let mut command = Command::new(program);
        command
            .current_dir("/")
            .env("RABBITMQ_NODENAME", RABBIT_NODE)
            .env("RABBITMQ_NODE_PORT", AMQP_PORT.to_string())
            .env("RABBITMQ_DIST_PORT", AMQP_DIST_PORT.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"));
        command
    }

    fn rabbitmqctl(&self, args: &[&str]) -> Command {
        let mut command = self.rabbit("rabbitmqctl");
        command.args(["-q", "-n", RABBIT_NODE]).args(args);
        command
    }

    async fn start_rabbitmq(&self) -> anyhow::Result<()> {
        let dir = self.rabbit_dir();
        std::fs::create_dir_all(dir.join("mnesia"))?;
        std::fs::create_dir_all(dir.join("log"))?;
        // The machine's /etc/rabbitmq/rabbitmq.conf binds 5672 and its plugins file enables the
        // management plugin on 15672: this node gets its own of both.
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{AMQP_PORT}\n"),
        )?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        run(
            "chown",
            Command::new("chown")
                .arg("-R")
                .arg("rabbitmq:rabbitmq")
                .arg(&dir),
        )
        .await?;
        run(
            "rabbitmq-server -detached",
            self.rabbit("rabbitmq-server").arg("-detached"),
        )
        .await?;
        let pid = dir.join("pid");
        run(
            "rabbitmqctl wait",
            &mut self.rabbitmqctl(&["wait", &pid.display().to_string(), "--timeout", "120"]),
        )
        .await?;
        Ok(())
    }

    /// `rabbitmqctl stop_app`: the broker closes every connection and stops serving.
    pub async fn stop_rabbitmq_app(&self) -> anyhow::Result<()> {
        run("rabbitmqctl stop_app", &mut self.rabbitmqctl(&["stop_app"])).await?;
        Ok(())
    }

    pub async fn start_rabbitmq_app(&self) -> anyhow::Result<()> {
        run(
            "rabbitmqctl start_app",
            &mut self.rabbitmqctl(&["start_app"]),
        )
        .await?;
        wait_until(
            "the private RabbitMQ listens",
            Duration::from_secs(60),
            || async { listening(amqp_addr()).await.then_some(()) },
        )
        .await
    }

    /// Stops all three (best effort: each is tried even if another fails).
    pub async fn stop(mut self) {
        let started = Instant::now();
        if let Err(e) = run("rabbitmqctl stop", &mut self.rabbitmqctl(&["stop"])).await {
            eprintln!("faults: stopping the private RabbitMQ: {e:#}");
        }
        if let Err(e) = run(
            "pg_ctl stop",
            self.as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.pg_data())
                .args(["-m", "fast", "-w", "stop"]),
        )
        .await
        {
            eprintln!("faults: stopping the private PostgreSQL: {e:#}");
        }
        let _ = self.stop_redis().await;
        eprintln!(
            "faults: private dependencies stopped in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
}
