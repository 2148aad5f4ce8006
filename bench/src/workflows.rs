//! `bench workflows`: the targets of workflows (issue 27), measured on this machine in this run.
//! Celery's canvas through RabbitMQ with the Redis result backend (`bench/celery/workflows.py`):
//! a chord (a fan-out of `BENCH_FANOUT` no-op tasks, default 1,000, and a join) and a chain of
//! `BENCH_CHAIN` no-op links (default 100), each from its first enqueue to its last task's
//! recorded completion. Taskmesh's rows come with its workflows; until then the table says so.

use std::process::Command;

use serde_json::Value;

use crate::jobs::{python, ROOT};

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
    println!("| Taskmesh | workflows are not built yet (issue 27) | |");
    Ok(())
}
