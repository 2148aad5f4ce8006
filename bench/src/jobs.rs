//! `bench jobs`: end-to-end no-op jobs per second (created → completed recorded) and p50/p99 of
//! creation-to-completion, through the API one by one and through the bulk path, next to the raw
//! broker limit (plain lapin publish-with-confirms / consume-with-ack) and Celery (RabbitMQ
//! broker, Redis results, `task_acks_late=True`, the same no-op job), all measured in this run on
//! this machine. Every service and the worker are processes of their own (`taskmesh serve`).

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use shared::testkit::TestEnv;
use sqlx::PgPool;

use crate::cpu::{self, CpuMeter};
use crate::{platform, raw_broker, Figures};

const JOBS: usize = 5000;
const WRITERS: usize = 8;
const BULK: usize = 500;
/// Messages through the raw broker loop (its CPU is printed per 1,000 messages).
const RAW_MESSAGES: usize = 20_000;
/// The repository, where the other engines' scripts are.
pub(crate) const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub async fn run() -> anyhow::Result<()> {
    let jobs = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(JOBS);
    println!(
        "Taskmesh job benchmark: {jobs} no-op jobs per path, {} cores",
        crate::cores()
    );
    let env = TestEnv::new();
    // BENCH_PATHS=burst (or any of raw,celery,bullmq,api,bulk,burst, comma-separated) for a
    // partial run.
    let paths =
        std::env::var("BENCH_PATHS").unwrap_or_else(|_| "raw,celery,bullmq,api,bulk,burst".into());
    let wanted = |p: &str| paths.split(',').any(|w| w.trim() == p);
    let raw = match wanted("raw") {
        true => {
            let meter = CpuMeter::new(Vec::new());
            let before = meter.read();
            let raw = raw_broker(&env.config, RAW_MESSAGES).await?;
            cpu::report(
                "raw broker",
                &before,
                &meter.read(),
                RAW_MESSAGES,
                "messages",
            );
            Some(raw)
        }
        false => None,
    };
    let celery = match wanted("celery") {
        true => celery(jobs)?,
        false => None,
    };
    let bullmq = match wanted("bullmq") {
        true => bullmq(jobs)?,
        false => None,
    };

    let Some(JobsPlatform {
        children,
        meter,
        http,
        token,
        db,
    }) = JobsPlatform::start(&env, "bench-jobs@example.com").await?
    else {
        return Ok(());
    };
    one_by_one(&http, &token, &db, 200).await?; // warm-up
    let measure = |title: &'static str| {
        let meter = meter.clone();
        let before = meter.read();
        move |figures: Figures| {
            cpu::report(title, &before, &meter.read(), jobs, "jobs");
            figures
        }
    };
    let api = match wanted("api") {
        true => Some(measure("one by one")(
            one_by_one(&http, &token, &db, jobs).await?,
        )),
        false => None,
    };
    let bulk = match wanted("bulk") {
        true => Some(measure("bulk")(bulk(&http, &token, &db, jobs).await?)),
        false => None,
    };
    let burst = match wanted("burst") {
        true => Some(burst(&http, &token, &db, jobs, &meter).await?),
        false => None,
    };
    platform::print_trace_counts().await;
    drop(children);

    let row = |path: &str, figures: &Option<Figures>| match figures {
        Some(f) => println!("| {path} | {:.0} | {:.1} | {:.1} |", f.rate, f.p50, f.p99),
        None => println!("| {path} | not measured | - | - |"),
    };
    println!();
    println!("| path | jobs/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    row(
        "raw lapin publish-confirm / consume-ack, 200 B messages (the broker's limit)",
        &raw,
    );
    match &celery {
        Some(c) => println!(
            "| Celery {} (prefork, concurrency {}, acks_late, Redis results), {} jobs from one producer | {:.0} | {:.1} | {:.1} |",
            c.version, c.concurrency, c.jobs, c.figures.rate, c.figures.p50, c.figures.p99
        ),
        None => println!("| Celery | not measured | - | - |"),
    }
    match &bullmq {
        Some(b) => println!(
            "| BullMQ {} (Redis, Worker concurrency {} in its own process), {} jobs added in bulk | {:.0} | {:.1} | {:.1} |",
            b.version, b.concurrency, b.jobs, b.figures.rate, b.figures.p50, b.figures.p99
        ),
        None => println!("| BullMQ | not measured | - | - |"),
    }
    row(
        &format!(
            "Taskmesh, POST /api/v1/tasks one job per request ({WRITERS} writers) → completed"
        ),
        &api,
    );
    row(
        &format!("Taskmesh, POST /api/v1/tasks/bulk ({BULK} per request) → completed"),
        &bulk,
    );
    row(
        &format!("Taskmesh, {jobs} jobs due at one instant (run_at), from due to completed: execution alone"),
        &burst,
    );
    let rate = |f: &Option<Figures>| f.as_ref().map_or(f64::NAN, |f| f.rate);
    let against = |name: &str, aims: [&str; 2], other: &Option<Baseline>| {
        if let Some(o) = other {
            println!(
                "Taskmesh / {name}: {:.2}x one by one{}, {:.2}x bulk{}, {:.2}x execution alone",
                rate(&api) / o.figures.rate,
                aims[0],
                rate(&bulk) / o.figures.rate,
                aims[1],
                rate(&burst) / o.figures.rate
            );
        }
    };
    against(
        "Celery",
        [" (aim: at least 2x)", " (aim: at least 5x)"],
        &celery,
    );
    against("BullMQ", ["", ""], &bullmq);
    if let Some(raw) = &raw {
        println!(
            "raw broker / Taskmesh: {:.1}x (bulk), {:.1}x (execution alone; aim: within 2x)",
            raw.rate / rate(&bulk),
            raw.rate / rate(&burst)
        );
    }
    Ok(())
}

/// The platform the job paths run on: every service a process of its own (with a meter of
/// their CPU), a client signed in as `email`, and task-svc's database, where completions are read.
pub(crate) struct JobsPlatform {
    pub children: Vec<(&'static str, tokio::process::Child)>,
    pub meter: CpuMeter,
    pub http: reqwest::Client,
    pub token: String,
    pub db: PgPool,
}

impl JobsPlatform {
    /// `None` (with the reason printed) when the platform cannot be started here.
    pub async fn start(env: &TestEnv, email: &str) -> anyhow::Result<Option<Self>> {
        let Some(children) = platform::spawn(env).await? else {
            return Ok(None);
        };
        let meter = CpuMeter::of(&children);
        let http = reqwest::Client::new();
        let token = platform::token(&http, email).await?;
        let db = PgPool::connect(&shared::db::database_url(
            &env.config.postgres,
            &env.config.task.database,
        )?)
        .await?;
        Ok(Some(Self {
            children,
            meter,
            http,
            token,
            db,
        }))
    }
}

/// Another engine's figures for the same no-op jobs, from its own script's JSON line.
struct Baseline {
    version: String,
    jobs: usize,
    concurrency: u64,
    figures: Figures,
}

/// Runs `bench/celery/run.py` in the project's Python venv; `None` (with the reason printed) if
/// Python or Celery is not available.
fn celery(jobs: usize) -> anyhow::Result<Option<Baseline>> {
    let Some(python) = python()? else {
        return Ok(None);
    };
    let mut run = Command::new(python);
    run.arg(format!("{ROOT}/bench/celery/run.py"))
        .args(["--jobs", &jobs.to_string()]);
    baseline("Celery", run, jobs)
}

/// The project's Python (its venv, with Celery), made on first use by `scripts/python-env`;
/// `None` (with the reason printed) if it cannot be had.
pub(crate) fn python() -> anyhow::Result<Option<String>> {
    let venv = Command::new(format!("{ROOT}/scripts/python-env")).output();
    match venv {
        Ok(out) if out.status.success() => Ok(Some(
            String::from_utf8(out.stdout)?
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string(),
        )),
        other => {
            println!("(no Python venv for Celery: {other:?})");
            Ok(None)
        }
    }
}

/// Runs `bench/bullmq/run.mjs` (BullMQ from npm, installed here on first use as the Celery venv
/// is; Redis on localhost); `None` (with the reason printed) if Node or BullMQ is not available.
fn bullmq(jobs: usize) -> anyhow::Result<Option<Baseline>> {
    let dir = format!("{ROOT}/bench/bullmq");
    if !std::path::Path::new(&format!("{dir}/node_modules/bullmq")).exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix", &dir])
            .output();
        match installed {
            Ok(out) if out.status.success() => {}
            other => {
                println!("(cannot install BullMQ with npm: {other:?})");
                return Ok(None);
            }
        }
    }
    let mut run = Command::new("node");
    run.arg(format!("{dir}/run.mjs"))
        .args(["--jobs", &jobs.to_string()]);
    baseline("BullMQ", run, jobs)
}

/// Runs another engine's benchmark script and reads the JSON line it ends with.
fn baseline(name: &str, mut run: Command, jobs: usize) -> anyhow::Result<Option<Baseline>> {
    let out = match run.output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            println!(
                "({name} run failed: {})",
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok(None);
        }
        Err(err) => {
            println!("({name} cannot be run here: {err})");
            return Ok(None);
        }
    };
    let stdout = String::from_utf8(out.stdout)?;
    let line: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))?;
    let number = |k: &str| line[k].as_f64().unwrap_or(f64::NAN);
    Ok(Some(Baseline {
        version: line["version"].as_str().unwrap_or("?").to_string(),
        jobs,
        concurrency: line["concurrency"].as_u64().unwrap_or(0),
        figures: Figures {
            rate: number("jobs_per_sec"),
            p50: number("p50_ms"),
            p99: number("p99_ms"),
        },
    }))
}

fn noop(n: usize) -> Value {
    json!({"title": format!("noop {n}"), "priority": "normal", "job": {"kind": "noop"}})
}

/// `count` jobs created (bulk) ahead of one shared `run_at`, so they fall due together: the
/// rate from that instant to the last completion is the engine's execution throughput (relay,
/// broker, worker, reports), apart from the API's creation cost. Latency is due → completed.
pub(crate) async fn burst(
    http: &reqwest::Client,
    token: &str,
    db: &PgPool,
    count: usize,
    meter: &CpuMeter,
) -> anyhow::Result<Figures> {
    let url = format!("{}/tasks/bulk", platform::API);
    // Creation runs at well over 100 jobs/s; leave room for it, and for the events of the
    // creations to be consumed before the jobs fall due.
    let lead = Duration::from_secs(5 + (count / 100) as u64);
    let run_at = chrono::Utc::now() + chrono::Duration::from_std(lead)?;
    let since = chrono::Utc::now();
    for from in (0..count).step_by(BULK) {
        let tasks: Vec<Value> = (from..(from + BULK).min(count))
            .map(|n| {
                json!({"title": format!("burst {n}"), "priority": "normal",
                       "job": {"kind": "noop", "run_at": run_at}})
            })
            .collect();
        let status = http
            .post(&url)
            .bearer_auth(token)
            .json(&json!({ "tasks": tasks }))
            .send()
            .await?
            .status();
        anyhow::ensure!(status.as_u16() == 201, "a bulk creation failed: {status}");
    }
    anyhow::ensure!(
        chrono::Utc::now() < run_at,
        "creation took longer than the lead; raise it"
    );
    let until_due = (run_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_due).await;
    let before = meter.read();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE created_at >= $1 AND status <> 'completed'",
        )
        .bind(since)
        .fetch_one(db)
        .await?;
        if open == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{open} burst jobs not completed");
        // The figures come from the recorded completion times; polling often only adds load.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cpu::report("execution alone", &before, &meter.read(), count, "jobs");
    recorded(db, count, since, run_at, Latency::FromStart).await
}

/// Where a task's latency is counted from.
enum Latency {
    /// Its creation.
    FromCreation,
    /// The run's start (the shared `run_at`).
    FromStart,
}

/// The figures of the tasks created since `since`, from the completion times task-svc recorded:
/// the rate is `count` over `start` → the last completion.
async fn recorded(
    db: &PgPool,
    count: usize,
    since: chrono::DateTime<chrono::Utc>,
    start: chrono::DateTime<chrono::Utc>,
    latency: Latency,
) -> anyhow::Result<Figures> {
    let rows: Vec<(f64, f64)> = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM (updated_at - CASE WHEN $3 THEN created_at ELSE $2 END))::float8
                  * 1000,
                EXTRACT(EPOCH FROM (updated_at - $2))::float8
           FROM tasks WHERE created_at >= $1",
    )
    .bind(since)
    .bind(start)
    .bind(matches!(latency, Latency::FromCreation))
    .fetch_all(db)
    .await?;
    let last = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let latencies: Vec<f64> = rows.into_iter().map(|r| r.0).collect();
    Ok(crate::figures(
        count,
        Duration::from_secs_f64(last),
        latencies,
    ))
}

/// `count` jobs, one per request from `WRITERS` concurrent writers.
async fn one_by_one(
    http: &reqwest::Client,
    token: &str,
    db: &PgPool,
    count: usize,
) -> anyhow::Result<Figures> {
    let url = format!("{}/tasks", platform::API);
    let started = Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..count)
        .map(|n| {
            let request = http.post(&url).bearer_auth(token).json(&noop(n));
            async move { request.send().await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(WRITERS)
        .map(|r| r.unwrap_or(0))
        .collect()
        .await;
    anyhow::ensure!(
        statuses.iter().all(|s| *s == 201),
        "a creation failed: {:?}",
        statuses.iter().find(|s| **s != 201)
    );
    println!(
        "one by one: {count} jobs created in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    completed(db, started, count).await
}

/// `count` jobs in requests of `BULK`, two requests at a time.
pub(crate) async fn bulk(
    http: &reqwest::Client,
    token: &str,
    db: &PgPool,
    count: usize,
) -> anyhow::Result<Figures> {
    let url = format!("{}/tasks/bulk", platform::API);
    let started = Instant::now();
    let batches: Vec<Value> = (0..count)
        .step_by(BULK)
        .map(
            |from| json!({"tasks": (from..(from + BULK).min(count)).map(noop).collect::<Vec<_>>()}),
        )
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(batches)
        .map(|body| {
            let request = http.post(&url).bearer_auth(token).json(&body);
            async move { request.send().await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(2)
        .map(|r| r.unwrap_or(0))
        .collect()
        .await;
    anyhow::ensure!(
        statuses.iter().all(|s| *s == 201),
        "a bulk creation failed: {statuses:?}"
    );
    println!(
        "bulk path: {count} jobs created in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    completed(db, started, count).await
}

/// Waits until every job since `started` is completed (as task-svc recorded it); the rate is
/// jobs over the time from the first request to the last completion, the latency each task's
/// creation to its completion, both as PostgreSQL's clock saw them.
async fn completed(db: &PgPool, started: Instant, count: usize) -> anyhow::Result<Figures> {
    let deadline = started + Duration::from_secs(600);
    let since = chrono::Utc::now() - chrono::Duration::from_std(started.elapsed())?;
    loop {
        let (done, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'completed'),
                    count(*) FILTER (WHERE status <> 'completed')
               FROM tasks WHERE created_at >= $1",
        )
        .bind(since)
        .fetch_one(db)
        .await?;
        if done as usize >= count && open == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{done} of {count} completed after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    recorded(db, count, since, since, Latency::FromCreation).await
}
