//! `bench stream`: 1,000 concurrent live streams (`GET /api/v1/events/stream`) of one user
//! through the gateway, and the delay from each event's publication (its CloudEvent `time`,
//! set when task-svc writes it) to its arrival at every client, p50 and p99; the gateway's
//! memory per open stream. Beside it, in the same run: a minimal SSE server (axum, one
//! broadcast channel) fanning the same number of events out to the same number of clients.

use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::{routing::get, Router};
use futures::StreamExt;
use shared::testkit::TestEnv;
use tokio::sync::{broadcast, Mutex};

use crate::platform;

const STREAMS: usize = 1000;
const EVENTS: usize = 50;

pub async fn run() -> anyhow::Result<()> {
    let streams = knob("BENCH_STREAMS", STREAMS);
    let events = knob("BENCH_EVENTS", EVENTS);
    println!(
        "Taskmesh stream benchmark: {streams} streams, {events} events each, {} cores",
        crate::cores()
    );
    let raw = raw_fanout(streams, events).await?;
    let env = TestEnv::new();
    // One user at one address holds them all.
    let limit = [
        ("TASKMESH_STREAM__MAX_STREAMS_PER_USER", streams.to_string()),
        (
            "TASKMESH_STREAM__MAX_STREAMS_PER_ADDRESS",
            streams.to_string(),
        ),
        (
            "TASKMESH_STREAM__MAX_STREAMS",
            streams.max(10_000).to_string(),
        ),
    ];
    let Some(children) = platform::spawn_with(&env, &limit).await? else {
        return Ok(());
    };
    let gateway = children
        .iter()
        .find(|(name, _)| *name == "api-gateway")
        .and_then(|(_, c)| c.id());
    let http = reqwest::Client::new();
    let token = platform::token(&http, "bench-stream@example.com").await?;
    let before = crate::rss_mib(gateway);
    let url = format!("{}/events/stream", platform::API);
    let delays = Arc::new(Mutex::new(Vec::with_capacity(streams * events)));
    let mut clients = Vec::with_capacity(streams);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(streams);
    for _ in 0..streams {
        let request = http.get(&url).bearer_auth(&token);
        let (delays, ready) = (delays.clone(), ready_tx.clone());
        clients.push(tokio::spawn(async move {
            let response = request.send().await?.error_for_status()?;
            read(response, events, &delays, Some(ready), |data| {
                let event: serde_json::Value = serde_json::from_str(data).ok()?;
                let time = chrono::DateTime::parse_from_rfc3339(event["time"].as_str()?).ok()?;
                Some(
                    (chrono::Utc::now() - time.with_timezone(&chrono::Utc)).num_microseconds()?
                        as f64
                        / 1000.0,
                )
            })
            .await
        }));
    }
    for _ in 0..streams {
        ready_rx.recv().await;
    }
    let open = crate::rss_mib(gateway);
    for i in 0..events {
        http.post(format!("{}/tasks", platform::API))
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": format!("streamed {i}")}))
            .send()
            .await?
            .error_for_status()?;
        tokio::time::sleep(Duration::from_millis(100)).await; // a steady rate, not a burst
    }
    for client in clients {
        tokio::time::timeout(Duration::from_secs(120), client).await???;
    }
    drop(children);
    let gateway = summary(&mut delays.lock().await);
    let per_stream_kib = (open - before) * 1024.0 / streams as f64;
    println!();
    println!("| path | deliveries | p50 ms | p99 ms | memory per stream |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw: one axum SSE server, a broadcast channel | {} | {:.2} | {:.2} | {:.1} KiB |",
        raw.0, raw.1, raw.2, raw.3
    );
    println!(
        "| task-svc outbox → RabbitMQ → feed → Redis log → gateway → client | {} | {:.2} | {:.2} | {per_stream_kib:.1} KiB (gateway RSS {before:.1} → {open:.1} MiB) |",
        gateway.0, gateway.1, gateway.2
    );
    Ok(())
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (count, p50, p99) of delays in milliseconds.
fn summary(delays: &mut [f64]) -> (usize, f64, f64) {
    delays.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 * q) as usize).min(delays.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    (delays.len(), at(0.5), at(0.99))
}

/// Reads `events` events whose data `delay` turns into a delay, after the first event (the
/// stream's `ready`, which `ready` is told of).
async fn read(
    response: reqwest::Response,
    events: usize,
    delays: &Mutex<Vec<f64>>,
    ready: Option<tokio::sync::mpsc::Sender<()>>,
    delay: impl Fn(&str) -> Option<f64>,
) -> anyhow::Result<()> {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let (mut seen, mut ready) = (0, ready);
    while seen < events {
        let Some(chunk) = body.next().await else {
            anyhow::bail!("the stream ended after {seen} events");
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(ready) = ready.take() {
                let _ = ready.send(()).await;
            }
            let is_event = block.lines().any(|l| l == "event: task.created");
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (true, Some(data)) = (is_event, data) {
                if let Some(ms) = delay(data) {
                    delays.lock().await.push(ms);
                }
                seen += 1;
            }
        }
    }
    Ok(())
}

/// The same fan-out with nothing in between: an axum SSE handler per client, fed by one
/// broadcast channel whose messages carry their send time.
async fn raw_fanout(streams: usize, events: usize) -> anyhow::Result<(usize, f64, f64, f64)> {
    let (tx, _) = broadcast::channel::<String>(1024);
    let sender = tx.clone();
    let app = Router::new().route(
        "/stream",
        get(move || {
            let rx = sender.subscribe();
            async move {
                let stream = tokio_stream_of(rx).map(|data| {
                    Ok::<_, std::convert::Infallible>(
                        Event::default().event("task.created").data(data),
                    )
                });
                let ready =
                    futures::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
                Sse::new(ready.chain(stream))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/stream", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let before = crate::rss_mib(Some(std::process::id()));
    let http = reqwest::Client::new();
    let delays = Arc::new(Mutex::new(Vec::with_capacity(streams * events)));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(streams);
    let mut clients = Vec::with_capacity(streams);
    for _ in 0..streams {
        let request = http.get(&url);
        let (delays, ready) = (delays.clone(), ready_tx.clone());
        clients.push(tokio::spawn(async move {
            let response = request.send().await?;
            read(response, events, &delays, Some(ready), |data| {
                let sent: i64 = data.parse().ok()?;
                Some((chrono::Utc::now().timestamp_micros() - sent) as f64 / 1000.0)
            })
            .await
        }));
    }
    for _ in 0..streams {
        ready_rx.recv().await;
    }
    // Server and clients share this process: its growth covers both ends of each stream.
    let open = crate::rss_mib(Some(std::process::id()));
    for _ in 0..events {
        let _ = tx.send(chrono::Utc::now().timestamp_micros().to_string());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in clients {
        tokio::time::timeout(Duration::from_secs(60), client).await???;
    }
    server.abort();
    let (count, p50, p99) = summary(&mut delays.lock().await);
    Ok((count, p50, p99, (open - before) * 1024.0 / streams as f64))
}

/// A broadcast receiver as a stream (a lagging client skips, as a minimal server would).
fn tokio_stream_of(rx: broadcast::Receiver<String>) -> impl futures::Stream<Item = String> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(message) => return Some((message, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
