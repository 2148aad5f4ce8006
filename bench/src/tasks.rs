//! `bench tasks`: task creations per second and p50/p99 through the gateway (authenticated, task
//! row and outbox row in one transaction), next to pgbench's raw rate for the same two inserts in
//! one transaction on the same PostgreSQL in the same run; p99 at half the saturation rate; and
//! list throughput with and without the Redis cache; and one person's 100,000 tasks listed by
//! label and by full-text search next to the same SQL ([`crate::task_search`]).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::testkit::TestEnv;
use tokio::sync::Mutex;

use crate::gateway::{load, load_with};
use crate::{figures, platform, Figures};

const CREATES: usize = 4000;
const WRITERS: usize = 8;

pub async fn run() -> anyhow::Result<()> {
    let creates = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CREATES);
    println!(
        "Taskmesh task benchmark: {creates} creations, {WRITERS} writers, {} cores",
        crate::cores()
    );
    let raw_tps = pgbench().await?;

    let env = TestEnv::new();
    let Some(children) = platform::spawn(&env).await? else {
        return Ok(());
    };
    let http = reqwest::Client::new();
    let token = platform::token(&http, "bench-tasks@example.com").await?;
    create(&http, &token, 200, None).await?; // warm-up
    let saturated = create(&http, &token, creates, None).await?;
    let half = create(&http, &token, creates / 2, Some(saturated.rate / 2.0)).await?;

    let url = format!("{}/tasks", platform::API);
    let auth = [("authorization", format!("Bearer {token}"))];
    load(&url, &token, 200).await?;
    let cached = load_with(&url, &auth, 5000).await?;
    let uncached = load_with(&format!("{url}?limit=50"), &auth, 5000).await?;
    let search = crate::task_search::run(&env, &token).await?;
    drop(children);

    println!();
    println!("| path | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| pgbench: INSERT task + INSERT outbox in one transaction, 8 clients | {raw_tps:.0} | - | - |"
    );
    println!(
        "| POST /api/v1/tasks through the gateway, saturated (8 writers) | {:.0} | {:.1} | {:.1} |",
        saturated.rate, saturated.p50, saturated.p99
    );
    println!(
        "| POST /api/v1/tasks at half that rate | {:.0} | {:.1} | {:.1} |",
        half.rate, half.p50, half.p99
    );
    println!(
        "| GET /api/v1/tasks, first page from the Redis cache (32 concurrent) | {:.0} | {:.1} | {:.1} |",
        cached.rate, cached.p50, cached.p99
    );
    println!(
        "| GET /api/v1/tasks?limit=50, same page from PostgreSQL (32 concurrent) | {:.0} | {:.1} | {:.1} |",
        uncached.rate, uncached.p50, uncached.p99
    );
    println!();
    println!(
        "Lists of one person's {} tasks by label and by full-text search (first page of 50):",
        crate::task_search::TASKS
    );
    println!();
    println!("| path | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (path, f) in &search {
        println!("| {path} | {:.0} | {:.1} | {:.1} |", f.rate, f.p50, f.p99);
    }
    println!(
        "creations through the API reach {:.0}% of the raw PostgreSQL rate",
        100.0 * saturated.rate / raw_tps
    );
    Ok(())
}

/// pgbench on a fresh database with task-svc's schema, for 10 seconds.
async fn pgbench() -> anyhow::Result<f64> {
    let env = TestEnv::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pool = shared::db::connect(
        &env.config.postgres,
        &env.config.task.database,
        &task_svc::MIGRATIONS,
        &shutdown,
    )
    .await?;
    pool.close().await;
    let script = std::env::temp_dir().join(format!("taskmesh-bench-{}.sql", env.id));
    std::fs::write(
        &script,
        "BEGIN;\n\
         INSERT INTO tasks (id, owner_id, title, description, priority) \
           VALUES (gen_random_uuid(), gen_random_uuid(), 'bench task', '', 'normal');\n\
         INSERT INTO outbox (id, routing_key, payload) \
           VALUES (gen_random_uuid(), 'task.created', '{\"type\": \"task.created\"}');\n\
         END;\n",
    )?;
    let url = shared::db::database_url(&env.config.postgres, &env.config.task.database)?;
    let output = Command::new("pgbench")
        .args(["-n", "-c", "8", "-j", "2", "-T", "10", "-f"])
        .arg(&script)
        .arg(&url)
        .output()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output: {text}"))
}

/// `count` creations from `WRITERS` workers; at most `rate` per second when given.
async fn create(
    http: &reqwest::Client,
    token: &str,
    count: usize,
    rate: Option<f64>,
) -> anyhow::Result<Figures> {
    let url = format!("{}/tasks", platform::API);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let started = Instant::now();
    let per_worker = count / WRITERS;
    let mut workers = Vec::new();
    for w in 0..WRITERS {
        let (http, url, token, latencies) = (
            http.clone(),
            url.clone(),
            token.to_string(),
            latencies.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut pace = rate.map(|r| {
                let mut i = tokio::time::interval(Duration::from_secs_f64(WRITERS as f64 / r));
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            for n in 0..per_worker {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"title": format!("bench {w}-{n}"), "priority": "normal"}))
                    .send()
                    .await?;
                anyhow::ensure!(response.status().as_u16() == 201, "create answered {}", response.status());
                response.bytes().await?;
                latencies.lock().await.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let elapsed = started.elapsed();
    let latencies = latencies.lock().await.clone();
    Ok(figures(latencies.len(), elapsed, latencies))
}
