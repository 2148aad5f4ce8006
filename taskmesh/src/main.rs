use std::time::Duration;

use clap::{Parser, Subcommand};
use shared::Config;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: under load the services spent about a sixth of their time
/// in malloc and free, some of it waiting on glibc's arena locks (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Taskmesh: an event-driven task platform.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every service in this process against local PostgreSQL, RabbitMQ and Redis.
    Up,
    /// Run one service (user-svc, task-svc, notify-svc, media-svc, worker, api-gateway).
    Serve { service: String },
    /// Exit 0 if `url` answers 2xx within 3 seconds, 1 otherwise: a container's health check,
    /// for images without curl (`taskmesh probe http://127.0.0.1:8082/readyz`).
    Probe { url: String },
    /// Print `TASKMESH_INTERNAL__KEYS=…` for one service (user-svc, task-svc, notify-svc,
    /// media-svc), derived from TASKMESH_INTERNAL__SECRET: given that instead of the secret, the
    /// service holds the keys of its own calls only. (The gateway keeps the secret.)
    Keys { service: String },
    /// Print the ACL rules of the workers' own Redis user for TASKMESH_REDIS__KEY_PREFIX, for
    /// `ACL SETUSER <user> reset on ><password> <rules>` or a `user` line of an ACL file: their
    /// heartbeats and job keys only, none of the keys the services trust.
    WorkerAcl,
    /// Make the workers' own RabbitMQ user, or bring it up to date (idempotent): the password in
    /// RABBITMQ_WORKER_PASSWORD, the permissions of their exchange, queues and routing keys
    /// for TASKMESH_AMQP__NAMESPACE on the vhost of TASKMESH_AMQP__URL, through the management
    /// API (TASKMESH_AMQP__MANAGEMENT_URL) as the services' user of TASKMESH_AMQP__URL, which
    /// needs the administrator tag. Waits up to 60 s for the API to answer.
    WorkerAmqpUser {
        /// The workers' user: the one in their own TASKMESH_AMQP__URL.
        #[arg(long, default_value = "taskmesh-worker")]
        user: String,
        /// Print the `rabbitmqctl` commands that make the user instead (nothing is changed).
        #[arg(long)]
        print: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Probe { url } = &cli.command {
        return probe(url).await;
    }
    let config = Config::load()?;
    shared::telemetry::init(&config.log)?;
    let shutdown = CancellationToken::new();
    shared::shutdown::cancel_on_signal(shutdown.clone());
    let outcome = match cli.command {
        Command::Up => up(config, shutdown).await,
        Command::Probe { .. } => unreachable!("answered before the config is read"),
        Command::Keys { service } => keys(&config, &service),
        Command::WorkerAcl => {
            println!(
                "{}",
                shared::cache::worker_acl_rules(&config.redis.key_prefix).join(" ")
            );
            Ok(())
        }
        Command::WorkerAmqpUser { user, print: true } => {
            print!(
                "{}",
                taskmesh::worker_amqp_user::rabbitmqctl_commands(&config.amqp, &user)?
            );
            Ok(())
        }
        Command::WorkerAmqpUser { user, print: false } => {
            taskmesh::worker_amqp_user::ensure(&config.amqp, &user, &shutdown).await
        }
        Command::Serve { service } => {
            let addr = taskmesh::bind_address(&config, &service)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("{service} cannot listen on {addr}: {e}"))?;
            // The address bound (with port 0 in the settings, the port the system gave).
            let addr = listener.local_addr().unwrap_or(addr);
            tracing::info!(%service, %addr, "listening");
            taskmesh::run_service(&service, config, listener, shutdown)?.await
        }
    };
    // The spans of the last moments, before the process ends.
    shared::trace::export::flush(Duration::from_secs(5)).await;
    outcome
}

fn keys(config: &Config, service: &str) -> anyhow::Result<()> {
    use shared::internal::keys;
    anyhow::ensure!(
        keys::SERVICES.contains(&service) && service != "api-gateway",
        "{service}: give keys to user-svc, task-svc, notify-svc or media-svc (the gateway keeps TASKMESH_INTERNAL__SECRET)"
    );
    let secret = config
        .internal
        .secret
        .as_ref()
        .ok_or(shared::internal::MissingSecret)?;
    println!("TASKMESH_INTERNAL__KEYS={}", keys::render(secret, service));
    Ok(())
}

async fn probe(url: &str) -> anyhow::Result<()> {
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    match answer {
        Ok(_) => Ok(()),
        Err(err) => {
            eprintln!("{url}: {err}");
            std::process::exit(1)
        }
    }
}

/// Where `taskmesh up` keeps its sealing key when `sealing.key` is not set.
const SEALING_KEY_FILE: &str = ".taskmesh/sealing.key";

/// The sealing key kept in [`SEALING_KEY_FILE`], made (readable by this user alone) on the
/// first `taskmesh up`: the secrets the services keep must open at the next start too.
fn local_sealing_key() -> anyhow::Result<secrecy::SecretString> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::path::Path::new(SEALING_KEY_FILE);
    if let Ok(key) = std::fs::read_to_string(path) {
        return Ok(key.trim().to_string().into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key = shared::internal::generate_secret();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {SEALING_KEY_FILE}: {e}"))?;
    use secrecy::ExposeSecret;
    writeln!(file, "{}", key.expose_secret())?;
    Ok(key)
}

async fn up(mut config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let local_key = config.sealing.key.is_none();
    if local_key {
        config.sealing.key = Some(local_sealing_key()?);
    }
    let management = config.amqp.management_url.clone();
    let mut stack = taskmesh::Stack::start(config, shutdown.clone()).await?;
    tokio::select! {
        ready = stack.wait_ready(Duration::from_secs(120)) => ready?,
        _ = shutdown.cancelled() => return stack.stop().await,
    }
    let c = &stack.config;
    println!();
    println!("Taskmesh is up.");
    println!("  Dashboard            {}/", c.gateway.url);
    println!("  API (gateway)        {}/api/v1", c.gateway.url);
    println!("  Swagger UI           {}/docs", c.gateway.url);
    println!("  user-svc             {}", c.user.url);
    println!("  task-svc             {}", c.task.url);
    println!("  notify-svc           {}", c.notify.url);
    println!("  media-svc            {}", c.media.url);
    println!("  worker               {}", c.worker.url);
    println!("  health / metrics     <service>/readyz, <service>/metrics");
    match &c.smtp.url {
        None => {
            let dir = std::path::absolute(&c.smtp.mail_dir)
                .unwrap_or_else(|_| c.smtp.mail_dir.clone().into());
            println!(
                "  Mail                 written as .eml files into {} (set TASKMESH_SMTP__URL to send over SMTP)",
                dir.display()
            );
        }
        Some(_) => println!("  Mail                 sent over SMTP (smtp.url)"),
    }
    match c.files.store {
        shared::config::StoreKind::Local => {
            let dir =
                std::path::absolute(&c.files.dir).unwrap_or_else(|_| c.files.dir.clone().into());
            println!(
                "  Files                stored in {} (set TASKMESH_FILES__STORE=s3 for S3)",
                dir.display()
            );
        }
        shared::config::StoreKind::S3 => {
            println!(
                "  Files                stored in s3://{}",
                c.files.s3_bucket
            )
        }
    }
    if local_key {
        let path =
            std::path::absolute(SEALING_KEY_FILE).unwrap_or_else(|_| SEALING_KEY_FILE.into());
        println!(
            "  Secrets              sealed with the key in {} (keep it; set TASKMESH_SEALING__KEY to use another)",
            path.display()
        );
    }
    println!("  RabbitMQ console     {management}  (guest/guest; `rabbitmq-plugins enable rabbitmq_management` if it does not load)");
    println!("Press Ctrl-C to stop.");
    println!();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        (name, result) = stack.first_exit() => {
            tracing::error!(service = name, result = ?result, "a service stopped; stopping the rest");
            shutdown.cancel();
        }
    }
    stack.stop().await?;
    println!("Taskmesh stopped.");
    Ok(())
}
