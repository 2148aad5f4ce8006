//! `cargo build --release -p taskmesh -p bench && target/release/bench [events|gateway|tasks|jobs|notify|media|stream|guard|workflows]`
//!
//! Events: outbox insert → relay → consumer ack, throughput and end-to-end latency, printed next
//! to the raw broker limit measured in the same run (plain lapin publish-with-confirms /
//! consume-with-ack through a queue of the same type), then each service's resident memory at
//! idle and after load, each service in its own process (`taskmesh serve <service>`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use shared::broker::{Broker, Publisher};
use shared::consumer::{Consumer, Handler, HandlerError, Incoming, QueueSpec};
use shared::events::{CloudEvent, EventPayload};
use shared::outbox::{self, Relay};
use shared::testkit::TestEnv;
use shared::{idempotency, Config};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 20_000;
const PAYLOAD_BYTES: usize = 200;

mod cpu;
mod gateway;
mod guard;
mod jobs;
mod media;
mod notify;
mod platform;
mod stream;
mod task_search;
mod tasks;
mod workflows;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        None | Some("events") => events().await,
        Some("gateway") => gateway::run().await,
        Some("tasks") => tasks::run().await,
        Some("jobs") => jobs::run().await,
        Some("notify") => notify::run().await,
        Some("media") => media::run().await,
        Some("stream") => stream::run().await,
        Some("guard") => guard::run().await,
        Some("workflows") => workflows::run().await,
        Some(other) => {
            anyhow::bail!(
                "unknown benchmark {other:?}: events, gateway, tasks, jobs, notify, media, stream, guard or workflows"
            )
        }
    }
}

async fn events() -> anyhow::Result<()> {
    let count = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MESSAGES);
    println!(
        "Taskmesh event benchmark: {count} messages, {} cores",
        cores()
    );
    let env = TestEnv::new();
    let raw = raw_broker(&env.config, count).await?;
    let events = outbox_path(&env.config, count).await?;
    let backlog = outbox_backlog(&env.config, count).await?;
    println!();
    println!("| path | messages/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| raw lapin publish-confirm / consume-ack ({:?} queue) | {:.0} | {:.1} | {:.1} |",
        env.config.amqp.queue_type, raw.rate, raw.p50, raw.p99
    );
    println!(
        "| outbox insert → relay → consumer ack (idempotent) | {:.0} | {:.1} | {:.1} |",
        events.rate, events.p50, events.p99
    );
    println!(
        "| outbox backlog (committed in batches of 1000) → relay → consumer ack | {:.0} | - | - |",
        backlog
    );
    println!(
        "live outbox path: {:.0}% of the raw broker limit; relay + consumer on a backlog: {:.0}%",
        100.0 * events.rate / raw.rate,
        100.0 * backlog / raw.rate
    );
    memory(&env).await?;
    Ok(())
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) struct Figures {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
}

pub(crate) fn figures(count: usize, elapsed: Duration, mut latencies_ms: Vec<f64>) -> Figures {
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        latencies_ms
            .get(((latencies_ms.len() as f64 * q) as usize).min(latencies_ms.len() - 1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Figures {
        rate: count as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Arguments of a classic queue for the raw loop, from `BENCH_RAW_QUEUE`: `priority` (the job
/// queues' type, `x-max-priority` 9), `priority:N` (N levels above 0), `classic` (no
/// priorities); `,v2` after any of them asks for the version 2 queue index and store, `,lazy`
/// (last) for lazy mode.
fn classic_args(kind: &str) -> anyhow::Result<FieldTable> {
    use lapin::types::AMQPValue;
    let (kind, lazy) = match kind.strip_suffix(",lazy") {
        Some(kind) => (kind, true),
        None => (kind, false),
    };
    let (kind, v2) = match kind.strip_suffix(",v2") {
        Some(kind) => (kind, true),
        None => (kind, false),
    };
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    let levels = match kind {
        "classic" => None,
        "priority" => Some(9),
        _ => match kind.strip_prefix("priority:").map(str::parse::<u8>) {
            Some(Ok(levels)) => Some(levels),
            _ => anyhow::bail!(
                "BENCH_RAW_QUEUE={kind}: expected quorum, classic, priority or priority:N (with ,v2 and ,lazy)"
            ),
        },
    };
    if let Some(levels) = levels {
        args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(levels));
    }
    if v2 {
        args.insert("x-queue-version".into(), AMQPValue::ShortShortUInt(2));
    }
    if lazy {
        args.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
    }
    Ok(args)
}

/// Plain lapin: a publisher pipelining confirms in windows of 256, a consumer acking each.
async fn raw_broker(config: &Config, count: usize) -> anyhow::Result<Figures> {
    let broker = Broker::new(&config.amqp, "bench-raw");
    let queue = broker.queue_name("bench-raw");
    let channel = broker.channel().await?;
    channel
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            match std::env::var("BENCH_RAW_QUEUE") {
                Ok(kind) if kind != "quorum" => classic_args(&kind)?,
                _ => broker.queue_args(None, None, None),
            },
        )
        .await?;
    let consumer_channel = broker.channel().await?;
    consumer_channel
        .basic_qos(256, BasicQosOptions::default())
        .await?;
    let mut deliveries = consumer_channel
        .basic_consume(
            &queue,
            "raw",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    // `BENCH_RAW_BACKLOG`: nothing is taken before everything is published, so the queue holds
    // the whole run at once, as a burst of due jobs makes a job queue do.
    let backlog = std::env::var_os("BENCH_RAW_BACKLOG").is_some();
    let (published_tx, published) = tokio::sync::oneshot::channel::<()>();
    let consume = tokio::spawn(async move {
        if backlog {
            let _ = published.await;
        }
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            let delivery = deliveries
                .next()
                .await
                .expect("stream open")
                .expect("delivery");
            let sent = u128::from_le_bytes(delivery.data[..16].try_into().unwrap());
            let now = started.elapsed().as_micros();
            latencies.push((now.saturating_sub(sent)) as f64 / 1000.0);
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }
        latencies
    });
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut sent = 0;
    while sent < count {
        let window = (count - sent).min(256);
        let mut confirms = Vec::with_capacity(window);
        for _ in 0..window {
            let mut body = vec![0u8; PAYLOAD_BYTES];
            body[..16].copy_from_slice(&started.elapsed().as_micros().to_le_bytes());
            confirms.push(
                channel
                    .basic_publish(
                        "",
                        &queue,
                        BasicPublishOptions::default(),
                        &body,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            confirm.await?;
        }
        sent += window;
    }
    let _ = published_tx.send(());
    let latencies = consume.await?;
    let elapsed = started.elapsed();
    // Close the consumer first: deleting a queue under a live consumer makes the broker cancel it
    // while the client may be cancelling too, which lapin takes for a protocol error.
    consumer_channel.close(200, "done").await?;
    channel.queue_delete(&queue, Default::default()).await?;
    Ok(figures(count, elapsed, latencies))
}

#[derive(Serialize, Deserialize)]
struct BenchEvent {
    n: usize,
    pad: String,
}

impl EventPayload for BenchEvent {
    const TYPE: &'static str = "bench.event";
    fn subject(&self) -> String {
        self.n.to_string()
    }
}

/// The same body under another type, for the backlog run's own queue.
#[derive(Serialize, Deserialize)]
struct BacklogEvent {
    n: usize,
    pad: String,
}

impl EventPayload for BacklogEvent {
    const TYPE: &'static str = "backlog.event";
    fn subject(&self) -> String {
        self.n.to_string()
    }
}

struct Recorder {
    pool: PgPool,
    latencies: Arc<Mutex<Vec<f64>>>,
}

impl Handler for Recorder {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let first = idempotency::first_time(&mut tx, "bench", message.event.id).await?;
        tx.commit().await?;
        if first {
            let latency = chrono::Utc::now() - message.event.time;
            self.latencies
                .lock()
                .unwrap()
                .push(latency.num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
        Ok(())
    }
}

/// A database, a queue bound to `binding`, and (once started) the relay and an idempotent
/// consumer recording each event's latency.
struct Pipeline {
    pool: PgPool,
    broker: Broker,
    queue: QueueSpec,
    latencies: Arc<Mutex<Vec<f64>>>,
    shutdown: CancellationToken,
    running: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    async fn prepare(config: &Config, name: &str, binding: &str) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let mut postgres = config.postgres.clone();
        postgres.max_connections = 20;
        let pool = shared::db::connect(
            &postgres,
            &config.task.database,
            &sqlx::migrate::Migrator::DEFAULT,
            &shutdown,
        )
        .await?;
        let broker = Broker::new(&config.amqp, name);
        let queue = QueueSpec::new(&broker, name, &config.consumer).bind(binding);
        queue.declare(&broker, &broker.channel().await?).await?;
        Ok(Self {
            pool,
            broker,
            queue,
            latencies: Arc::default(),
            shutdown,
            running: Vec::new(),
        })
    }

    fn start(&mut self, config: &Config) {
        let recorder = Recorder {
            pool: self.pool.clone(),
            latencies: self.latencies.clone(),
        };
        let consumer =
            Consumer::new(self.broker.clone(), self.queue.clone(), recorder).with_prefetch(256);
        let relay = Relay::new(
            self.pool.clone(),
            Publisher::new(self.broker.clone()),
            config.outbox.clone(),
        );
        self.running
            .push(tokio::spawn(consumer.run(self.shutdown.clone())));
        self.running
            .push(tokio::spawn(relay.run(self.shutdown.clone())));
    }

    /// Waits until `count` events were applied (at most ten minutes).
    async fn wait_for(&self, count: usize, started: Instant) -> anyhow::Result<Duration> {
        loop {
            let done = self.latencies.lock().unwrap().len();
            if done >= count {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "only {done} of {count} events arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the relay and consumer and returns the recorded latencies.
    async fn finish(self) -> anyhow::Result<Vec<f64>> {
        self.shutdown.cancel();
        for task in self.running {
            task.await?;
        }
        self.pool.close().await;
        let latencies = self.latencies.lock().unwrap().clone();
        Ok(latencies)
    }
}

fn bench_event(n: usize) -> BenchEvent {
    BenchEvent {
        n,
        pad: "x".repeat(PAYLOAD_BYTES / 2),
    }
}

/// Inserts events in their own transactions from 8 writers while the relay and an idempotent
/// consumer run.
async fn outbox_path(config: &Config, count: usize) -> anyhow::Result<Figures> {
    let mut pipeline = Pipeline::prepare(config, "bench-outbox", "bench.#").await?;
    pipeline.start(config);
    let started = Instant::now();
    let writers = 8;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pool = pipeline.pool.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..count).step_by(writers) {
                let mut tx = pool.begin().await?;
                outbox::enqueue(&mut tx, CloudEvent::new("bench", bench_event(n))).await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let inserted = started.elapsed();
    let elapsed = pipeline.wait_for(count, started).await?;
    println!(
        "outbox: {count} inserts in {:.2}s ({:.0}/s), all acked after {:.2}s",
        inserted.as_secs_f64(),
        count as f64 / inserted.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    Ok(figures(count, elapsed, pipeline.finish().await?))
}

/// Commits `count` events first (1000 per transaction), then starts the relay and consumer and
/// measures how fast they drain the backlog: the relay's and consumer's own ceiling.
async fn outbox_backlog(config: &Config, count: usize) -> anyhow::Result<f64> {
    let mut pipeline = Pipeline::prepare(config, "bench-backlog", "backlog.#").await?;
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut tx = pipeline.pool.begin().await?;
        for &n in chunk {
            let BenchEvent { n, pad } = bench_event(n);
            outbox::enqueue(&mut tx, CloudEvent::new("bench", BacklogEvent { n, pad })).await?;
        }
        tx.commit().await?;
    }
    let started = Instant::now();
    pipeline.start(config);
    let elapsed = pipeline.wait_for(count, started).await?;
    println!(
        "backlog: {count} committed events published and acked in {:.2}s",
        elapsed.as_secs_f64()
    );
    pipeline.finish().await?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Each service in its own process: resident memory at idle and after load through the gateway.
async fn memory(env: &TestEnv) -> anyhow::Result<()> {
    let Some(children) = platform::spawn(env).await? else {
        return Ok(());
    };
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: Vec<f64> = children.iter().map(|(_, c)| rss_mib(c.id())).collect();

    // Load: one user creates tasks through the gateway, 8 at a time.
    let api = platform::API;
    let creds = serde_json::json!({"email": "bench@example.com", "password": "bench password 123", "display_name": "Bench"});
    http.post(format!("{api}/auth/register"))
        .json(&creds)
        .send()
        .await?;
    let login: serde_json::Value = http
        .post(format!("{api}/auth/login"))
        .json(&serde_json::json!({"email": "bench@example.com", "password": "bench password 123"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let tasks = 2000;
    let started = Instant::now();
    let succeeded = futures::stream::iter(0..tasks)
        .map(|i| {
            let http = http.clone();
            let token = token.clone();
            async move {
                http.post(format!("{api}/tasks"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({"title": format!("bench task {i}")}))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<bool>>()
        .await;
    let failed = succeeded.iter().filter(|ok| !**ok).count();
    anyhow::ensure!(failed == 0, "{failed} of {tasks} task creations failed");
    println!(
        "\nload for the memory figures: {tasks} task creations through the gateway in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let loaded: Vec<f64> = children.iter().map(|(_, c)| rss_mib(c.id())).collect();
    println!();
    println!("| service | RSS idle MiB | RSS after load MiB |");
    println!("|---|---|---|");
    for (i, (name, _)) in children.iter().enumerate() {
        println!("| {name} | {:.1} | {:.1} |", idle[i], loaded[i]);
    }
    for (_, mut child) in children {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    Ok(())
}

pub(crate) fn rss_mib(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return f64::NAN };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
