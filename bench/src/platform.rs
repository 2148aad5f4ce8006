//! Starts every service as its own process (`taskmesh serve <service>`, the release binary next
//! to this one) on fixed ports, against the bench's isolated databases, namespace and key prefix.

use std::time::{Duration, Instant};

use shared::testkit::TestEnv;
use tokio::process::Child;

/// The gateway's API base in these runs.
pub const API: &str = "http://127.0.0.1:18080/api/v1";
/// user-svc's base URL in these runs.
pub const USER_SVC: &str = "http://127.0.0.1:18081";

const SERVICES: [(&str, &str, u16); 6] = [
    ("user-svc", "USER", 18081),
    ("task-svc", "TASK", 18082),
    ("notify-svc", "NOTIFY", 18083),
    ("media-svc", "MEDIA", 18084),
    ("worker", "WORKER", 18085),
    ("api-gateway", "GATEWAY", 18080),
];

/// Spawns and waits until every service is ready. `None` when `taskmesh` is not built.
/// A benchmark drives one user as fast as it can, so the per-user API rate limit is lifted.
pub async fn spawn(env: &TestEnv) -> anyhow::Result<Option<Vec<(&'static str, Child)>>> {
    spawn_with(env, &[]).await
}

/// Like [`spawn`], with more settings (`TASKMESH_…` variables) given to every service.
pub async fn spawn_with(
    env: &TestEnv,
    extra: &[(&str, String)],
) -> anyhow::Result<Option<Vec<(&'static str, Child)>>> {
    let exe = std::env::current_exe()?.with_file_name("taskmesh");
    if !exe.exists() {
        println!(
            "({} not built; run `cargo build --release -p taskmesh`)",
            exe.display()
        );
        return Ok(None);
    }
    let config = &env.config;
    let tracing = tracing_endpoint().await?;
    let mut children = Vec::new();
    for (name, _, _) in SERVICES {
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(["serve", name])
            .env("TASKMESH_AMQP__NAMESPACE", &config.amqp.namespace)
            .env("TASKMESH_REDIS__KEY_PREFIX", &config.redis.key_prefix)
            .env(
                "TASKMESH_INTERNAL__SECRET",
                secrecy::ExposeSecret::expose_secret(config.internal.secret.as_ref().unwrap()),
            )
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        command.env("TASKMESH_RATE_LIMIT__API_REQUESTS", "1000000000");
        // Every process is this version: group rows (decision 35), as `taskmesh up` writes.
        command.env("TASKMESH_OUTBOX__GROUP_ROWS", "true");
        // One member makes every job: no quota gets in the way.
        command.env("TASKMESH_JOBS__MEMBER_MAX_LIVE_JOBS", "1000000000");
        command.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(endpoint) = &tracing {
            command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        }
        for (svc, key, port) in SERVICES {
            command.env(format!("TASKMESH_{key}__BIND"), format!("127.0.0.1:{port}"));
            command.env(
                format!("TASKMESH_{key}__URL"),
                format!("http://127.0.0.1:{port}"),
            );
            let db = match svc {
                "user-svc" => &config.user.database,
                "task-svc" => &config.task.database,
                "notify-svc" => &config.notify.database,
                "media-svc" => &config.media.database,
                _ => continue,
            };
            command.env(format!("TASKMESH_{key}__DATABASE"), db);
        }
        children.push((name, command.spawn()?));
    }
    let http = reqwest::Client::new();
    for (name, _, port) in SERVICES {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(Some(children))
}

/// Registers a user and returns an access token.
/// Opens the verification link notify-svc queued for `email` (read from its database): only
/// verified addresses are mailed. Returns once notify-svc knows.
pub async fn verify_email(
    http: &reqwest::Client,
    env: &TestEnv,
    email: &str,
) -> anyhow::Result<()> {
    let url = shared::db::database_url(&env.config.postgres, &env.config.notify.database)?;
    let notify = sqlx::PgPool::connect(&url).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let link: String = loop {
        let link = sqlx::query_scalar(
            "SELECT content->>'link' FROM messages
              WHERE kind = 'email.verification' AND content->>'to' = $1",
        )
        .bind(email)
        .fetch_optional(&notify)
        .await?;
        match link {
            Some(link) => break link,
            None if Instant::now() > deadline => anyhow::bail!("no verification mail for {email}"),
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let token = link.split_once("token=").map_or("", |(_, t)| t);
    let verified = http
        .post(format!("{API}/auth/verify-email"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await?;
    anyhow::ensure!(
        verified.status() == 200,
        "verify-email: {}",
        verified.status()
    );
    loop {
        let known: Option<bool> =
            sqlx::query_scalar("SELECT email_verified FROM users WHERE lower(email) = lower($1)")
                .bind(email)
                .fetch_optional(&notify)
                .await?;
        if known == Some(true) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "notify-svc never heard {email} verified"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    notify.close().await;
    Ok(())
}

pub async fn token(http: &reqwest::Client, email: &str) -> anyhow::Result<String> {
    let password = "bench password 123";
    http.post(format!("{API}/auth/register"))
        .json(&serde_json::json!({"email": email, "password": password, "display_name": "Bench"}))
        .send()
        .await?;
    let login: serde_json::Value = http
        .post(format!("{API}/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    login["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("login failed: {login}"))
}

/// With `BENCH_TRACING=on`: every service exports its traces over OTLP/HTTP to a collector that
/// takes every batch and keeps nothing (in this process, started once), the least any real
/// collector costs; its address. Without it, nothing is exported.
async fn tracing_endpoint() -> anyhow::Result<Option<String>> {
    static SINK: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    if std::env::var("BENCH_TRACING").as_deref() != Ok("on") {
        return Ok(None);
    }
    let endpoint = SINK
        .get_or_try_init(|| async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            // An empty ExportTraceServiceResponse is zero bytes.
            let app = axum::Router::new().route("/v1/traces", axum::routing::post(|| async { "" }));
            tokio::spawn(async move { axum::serve(listener, app).await });
            println!("(tracing on: every service exports OTLP/HTTP to a sink at {addr})");
            anyhow::Ok(format!("http://{addr}"))
        })
        .await?;
    Ok(Some(endpoint.clone()))
}

/// With `BENCH_TRACING=on`, prints the spans every service exported and dropped so far (their
/// `taskmesh_trace_spans_*` counters): a figure with most spans dropped measured less tracing.
pub async fn print_trace_counts() {
    if std::env::var("BENCH_TRACING").as_deref() != Ok("on") {
        return;
    }
    let http = reqwest::Client::new();
    let (mut exported, mut dropped) = (0.0, 0.0);
    for (_, _, port) in SERVICES {
        let Ok(answer) = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        else {
            continue;
        };
        let text = answer.text().await.unwrap_or_default();
        for line in text.lines() {
            let value = || line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if line.starts_with("taskmesh_trace_spans_exported_total") {
                exported += value().unwrap_or(0.0);
            } else if line.starts_with("taskmesh_trace_spans_dropped_total") {
                dropped += value().unwrap_or(0.0);
            }
        }
    }
    println!("(traces: {exported:.0} spans exported, {dropped:.0} dropped)");
}
