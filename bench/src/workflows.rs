//! `bench workflows`: the targets of workflows (issue 27), measured on this machine in this run.
//! Celery's canvas through RabbitMQ with the Redis result backend (`bench/celery/workflows.py`):
//! a chord (a fan-out of `BENCH_FANOUT` no-op tasks, default 1,000, and a join) and a chain of
//! `BENCH_CHAIN` no-op links (default 100), each from its first enqueue to its last task's
//! recorded completion. Taskmesh's rows are the same two shapes as workflows of `noop` steps
//! (`POST /api/v1/workflows` through the gateway), each from the request to the workflow's
//! recorded end, on the platform `bench jobs` starts (every service a process of its own).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::testkit::TestEnv;

use crate::jobs::{python, JobsPlatform, ROOT};

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub async fn run() -> anyhow::Result<()> {
    let (fanout, chain) = (count("BENCH_FANOUT", 1000), count("BENCH_CHAIN", 100));
    println!(
        "Workflows benchmark: a fan-out of {fanout} no-op steps and a join; a chain of {chain}"
    );
    let taskmesh = taskmesh(fanout, chain).await?;
    let Some(python) = python()? else {
        return Ok(());
    };
    let out = Command::new(python)
        .arg(format!("{ROOT}/bench/celery/workflows.py"))
        .args([
            "--fanout",
            &fanout.to_string(),
            "--chain",
            &chain.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "the Celery run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}"))?;
    let seconds = |k: &str| line[k].as_f64().unwrap_or(f64::NAN);
    let (fan_s, chain_s) = (seconds("fanout_seconds"), seconds("chain_seconds"));
    println!("| engine | fan-out and join, s (steps/s) | chain, s (ms per link) |");
    println!("|---|---|---|");
    println!(
        "| Celery {} (prefork, concurrency {}, Redis results): chord / chain | {fan_s:.3} ({:.0}) | {chain_s:.3} ({:.1}) |",
        line["version"].as_str().unwrap_or("?"),
        line["concurrency"].as_u64().unwrap_or(0),
        fanout as f64 / fan_s,
        chain_s * 1000.0 / chain as f64,
    );
    match taskmesh {
        Some((fan, link)) => println!(
            "| Taskmesh (this build): workflow of {fanout} steps and a join / chain of {chain} | {fan:.3} ({:.0}) | {link:.3} ({:.1}) |",
            fanout as f64 / fan,
            link * 1000.0 / chain as f64,
        ),
        None => println!("| Taskmesh | not measured (the platform could not start) | |"),
    }
    println!(
        "Taskmesh against Celery: fan-out and join {:.2}x, chain {:.2}x",
        fan_s / taskmesh.map_or(f64::NAN, |t| t.0),
        chain_s / taskmesh.map_or(f64::NAN, |t| t.1),
    );
    Ok(())
}

/// A fan-out of `n` no-op steps and a join that needs them all.
fn fan_out(n: usize) -> Value {
    let mut steps: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("s{i}"), "job": {"kind": "noop"}}))
        .collect();
    let needs: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    steps.push(json!({"id": "join", "needs": needs, "job": {"kind": "noop"}}));
    json!({"title": format!("fan-out of {n}"), "priority": "normal", "steps": steps})
}

/// A chain of `n` no-op steps, each needing the one before.
fn chain_of(n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| match i {
            0 => json!({"id": "l0", "job": {"kind": "noop"}}),
            _ => json!({"id": format!("l{i}"), "needs": [format!("l{}", i - 1)], "job": {"kind": "noop"}}),
        })
        .collect();
    json!({"title": format!("chain of {n}"), "priority": "normal", "steps": steps})
}

/// Taskmesh's seconds for the fan-out and the chain, with the CPU each took per process.
async fn taskmesh(fanout: usize, chain: usize) -> anyhow::Result<Option<(f64, f64)>> {
    let env = TestEnv::new();
    let Some(platform) = JobsPlatform::start(&env, "bench-workflows@example.com").await? else {
        return Ok(None);
    };
    timed(&platform, &fan_out(10)).await?; // warm-up
    timed(&platform, &chain_of(5)).await?;
    let mut seconds = Vec::new();
    let mut last = None;
    for (title, body, steps) in [
        ("workflow: fan-out and join", fan_out(fanout), fanout + 1),
        ("workflow: chain", chain_of(chain), chain),
    ] {
        let before = platform.meter.read();
        let (took, id) = timed(&platform, &body).await?;
        seconds.push(took);
        last = Some(id);
        crate::cpu::report(title, &before, &platform.meter.read(), steps, "steps");
    }
    if let Some(chain) = last {
        // Only an explanation: the figures above stand without it.
        if let Err(err) = links(&platform, chain).await {
            println!("(a chain link's parts could not be read: {err:#})");
        }
    }
    drop(platform);
    Ok(Some((seconds[0], seconds[1])))
}

/// Where a chain's links spent their time, from what task-svc's database recorded (one
/// machine's clock): a step's end → the transaction that records it begins (the report's way:
/// worker, broker, consumer), → that transaction's last outbox write (releasing the next
/// step), → the relay's round that publishes it begins (the commit, the wake-up), → the next
/// step's start (the claim, the broker, the worker's claim). Medians over the links, in ms.
async fn links(platform: &JobsPlatform, id: uuid::Uuid) -> anyhow::Result<()> {
    let rows: Vec<(f64, f64, f64, f64, f64)> = sqlx::query_as(
        "WITH s AS (
            SELECT s.position, j.started_at, j.finished_at, t.updated_at
              FROM workflow_steps s JOIN jobs j USING (task_id) JOIN tasks t ON t.id = task_id
             WHERE s.workflow_id = $1
         ), l AS (
            SELECT started_at AS next_start, lag(finished_at) OVER w AS ended,
                   lag(updated_at) OVER w AS recorded, finished_at - started_at AS run
              FROM s WINDOW w AS (ORDER BY position)
         )
         SELECT ms(recorded - ended), ms(o.written - recorded), ms(o.relayed - o.written),
                ms(next_start - o.relayed), ms(run)
           FROM l CROSS JOIN LATERAL (
                SELECT max(available_at) AS written, min(published_at) AS relayed FROM outbox
                 WHERE available_at BETWEEN l.recorded AND l.next_start) o
          WHERE o.relayed IS NOT NULL"
            .replace("ms(", "1000 * date_part('epoch', ")
            .as_str(),
    )
    .bind(id)
    .fetch_all(&platform.db)
    .await?;
    let mut parts: [Vec<f64>; 5] = Default::default();
    for row in rows {
        for (part, value) in parts.iter_mut().zip([row.0, row.1, row.2, row.3, row.4]) {
            part.push(value);
        }
    }
    let medians: Vec<String> = parts
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).map_or("-".into(), |m| format!("{m:.2}"))
        })
        .collect();
    println!(
        "chain, a link's parts (median ms): the step's end → its recording begins {}, → the \
         release written {}, → the relay's round {}, → the next step's start {}; a run {}",
        medians[0], medians[1], medians[2], medians[3], medians[4],
    );
    Ok(())
}

/// Creates workflow `body`; returns the seconds from the request to its recorded end, and its
/// id.
async fn timed(platform: &JobsPlatform, body: &Value) -> anyhow::Result<(f64, uuid::Uuid)> {
    let since = chrono::Utc::now();
    let started = Instant::now();
    let response = platform
        .http
        .post(format!("{}/workflows", crate::platform::API))
        .bearer_auth(&platform.token)
        .json(body)
        .send()
        .await?;
    anyhow::ensure!(response.status() == 201, "{}", response.text().await?);
    let created: Value = response.json().await?;
    let id = uuid::Uuid::parse_str(created["id"].as_str().unwrap_or_default())?;
    loop {
        let (status, finished): (String, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT status, finished_at FROM workflows WHERE id = $1")
                .bind(id)
                .fetch_one(&platform.db)
                .await?;
        if let Some(finished) = finished {
            anyhow::ensure!(status == "completed", "the workflow ended {status}");
            return Ok(((finished - since).as_seconds_f64(), id));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "not over after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
