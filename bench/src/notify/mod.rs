//! `bench notify`: notifications per second and p50/p99 latency of a `task.assigned` event's
//! mail (to SMTP acceptance) and webhook (to its 2xx), next to the raw limit of the same sinks
//! measured in the same run: a plain lettre send loop and a plain reqwest POST loop.
//!
//! Both sinks run inside the bench: a minimal SMTP responder on tokio (EHLO/MAIL/RCPT/DATA/
//! NOOP/RSET/QUIT, every command answered at once, each message's arrival time recorded when
//! its final `.` arrives) and an axum HTTP server answering 204. Ada assigns `N` tasks to Bob
//! with `POST /api/v1/tasks/bulk` (`BULK` per request, one request at a time); Bob has one
//! webhook endpoint subscribed to `task.assigned`, so each assignment makes one mail and one
//! webhook delivery. Every service is a process of its own (`taskmesh serve`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use shared::testkit::TestEnv;

mod sinks;

use sinks::{Arrivals, HttpSink, SmtpSink};

use crate::cpu::{self, CpuMeter};
use crate::{platform, Figures};

const NOTIFICATIONS: usize = 2000;
/// Assignments per bulk request.
const BULK: usize = 500;
/// notify-svc's mail sends at once: 64, over one pooled lettre transport keeping up to 128 idle
/// connections (its consumer handles 128 commands at once, so claims overlap the sends).
const MAIL_CONCURRENCY: usize = 64;
/// notify-svc's webhook loop: `webhooks.per_endpoint` (4) in flight to one endpoint, a new
/// reqwest client (so a new connection) per attempt.
const WEBHOOK_PER_ENDPOINT: usize = 4;
const HTTP_CONCURRENCY: usize = 64;

pub async fn run() -> anyhow::Result<()> {
    let count = std::env::var("BENCH_NOTIFICATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NOTIFICATIONS);
    println!(
        "Taskmesh notifications benchmark: {count} task.assigned events, {} cores",
        crate::cores()
    );
    println!(
        "sinks: an in-process SMTP responder (tokio, answers every command at once) and an \
         in-process axum HTTP server answering 204"
    );
    let smtp = SmtpSink::start().await?;
    let hooks = HttpSink::start().await?;
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);

    // The raw limits, before the platform starts.
    let raw_mail_1 = raw_lettre(&smtp, &smtp_url, count, 1).await?;
    let raw_mail_n = raw_lettre(&smtp, &smtp_url, count, MAIL_CONCURRENCY).await?;
    let raw_http_1 = raw_http(&hooks, count, 1, false).await?;
    let raw_http_n = raw_http(&hooks, count, HTTP_CONCURRENCY, false).await?;
    let raw_http_fresh = raw_http(&hooks, count, WEBHOOK_PER_ENDPOINT, true).await?;

    let env = TestEnv::new();
    let extra = [
        ("TASKMESH_SMTP__URL", smtp_url.clone()),
        (
            "TASKMESH_NOTIFICATIONS__EMAIL_HOURLY_CAP",
            "100000000".into(),
        ),
        ("TASKMESH_WEBHOOKS__ALLOW", "[\"127.0.0.1\"]".into()),
    ];
    let Some(children) = platform::spawn_with(&env, &extra).await? else {
        return Ok(());
    };
    let meter = CpuMeter::of(&children);
    let http = reqwest::Client::new();
    let ada = platform::token(&http, "bench-notify-ada@example.com").await?;
    let bob = platform::token(&http, "bench-notify-bob@example.com").await?;
    platform::verify_email(&http, &env, "bench-notify-bob@example.com").await?;
    let me: Value = http
        .get(format!("{}/users/me", platform::API))
        .bearer_auth(&bob)
        .send()
        .await?
        .json()
        .await?;
    let bob_id = me["id"].as_str().unwrap_or_default().to_string();
    let endpoint = http
        .post(format!("{}/webhooks", platform::API))
        .bearer_auth(&bob)
        .json(
            &json!({"url": format!("http://127.0.0.1:{}/hook", hooks.port),
                      "event_types": ["task.assigned"], "description": "bench notify"}),
        )
        .send()
        .await?;
    anyhow::ensure!(
        endpoint.status().as_u16() == 201,
        "creating the webhook endpoint: {} {}",
        endpoint.status(),
        endpoint.text().await?
    );

    // Warm-up (and notify-svc has heard of Bob): 20 assignments, all mailed and delivered.
    let warm = Run::new();
    assign(&http, &ada, &bob_id, 20, &warm).await?;
    wait(&smtp.log, &warm, 20, "warm-up mails").await?;
    wait(&hooks.log, &warm, 20, "warm-up webhooks").await?;

    smtp.log.lock().unwrap().reset();
    hooks.log.lock().unwrap().reset();
    let before = meter.read();
    let run = Run::new();
    assign(&http, &ada, &bob_id, count, &run).await?;
    let created = run.started.elapsed();
    println!(
        "Taskmesh: {count} assignments created in {:.2} s ({} per request)",
        created.as_secs_f64(),
        BULK
    );
    let mails = wait(&smtp.log, &run, count, "mails").await?;
    let webhooks = wait(&hooks.log, &run, count, "webhook deliveries").await?;
    cpu::report(
        "Taskmesh, mails and webhooks",
        &before,
        &meter.read(),
        count,
        "assignments",
    );
    let mail_stats = smtp.log.lock().unwrap().stats();
    let hook_stats = hooks.log.lock().unwrap().stats();
    println!(
        "Taskmesh SMTP sessions: {} connections for {count} mails, at most {} open at once, \
         {} NOOPs (lettre tests a pooled connection before reusing it), {:.0} bytes per mail",
        mail_stats.connections, mail_stats.max_open, mail_stats.noops, mail_stats.bytes
    );
    println!(
        "Taskmesh webhook deliveries: {} connections for {count} deliveries; {} gaps of 150 ms or \
         more between arrivals (longest {:.0} ms)",
        hook_stats.connections, hook_stats.long_gaps, hook_stats.longest_gap_ms
    );
    drop(children);

    println!();
    println!("| path | notifications/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    let row = |path: &str, f: &Figures| {
        println!("| {path} | {:.0} | {:.1} | {:.1} |", f.rate, f.p50, f.p99)
    };
    row(
        "raw lettre, pooled transport (`from_url`), one send at a time, to the same SMTP sink",
        &raw_mail_1,
    );
    row(
        &format!("raw lettre, pooled transport, {MAIL_CONCURRENCY} sends in flight (as notify-svc's mail consumer)"),
        &raw_mail_n,
    );
    row("Taskmesh: bulk assignment → SMTP acceptance", &mails);
    row(
        "raw reqwest POST, one client, one at a time, to the same HTTP sink",
        &raw_http_1,
    );
    row(
        &format!("raw reqwest POST, one client, {HTTP_CONCURRENCY} in flight"),
        &raw_http_n,
    );
    row(
        &format!("raw reqwest POST, a new client per POST, {WEBHOOK_PER_ENDPOINT} in flight (as notify-svc's webhook loop to one endpoint)"),
        &raw_http_fresh,
    );
    row("Taskmesh: bulk assignment → webhook 2xx", &webhooks);
    println!(
        "raw latencies are one send's duration; Taskmesh's are from the bulk request's answer to \
         arrival at the sink"
    );
    println!(
        "Taskmesh / raw: mail {:.2}x lettre one at a time, {:.2}x lettre {MAIL_CONCURRENCY} in flight; \
         webhooks {:.4}x reqwest one at a time, {:.4}x {HTTP_CONCURRENCY} in flight, {:.4}x a new client per POST, {WEBHOOK_PER_ENDPOINT} in flight",
        mails.rate / raw_mail_1.rate,
        mails.rate / raw_mail_n.rate,
        webhooks.rate / raw_http_1.rate,
        webhooks.rate / raw_http_n.rate,
        webhooks.rate / raw_http_fresh.rate
    );
    println!(
        "(CPU figures for postgresql, rabbitmq and redis count every process of that name on the \
         machine, other people's runs included)"
    );
    Ok(())
}

/// One measured run: when it started and when each bulk request was answered.
struct Run {
    started: Instant,
    answers: Mutex<Vec<Instant>>,
}

impl Run {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            answers: Mutex::default(),
        }
    }
}

/// Ada assigns `count` tasks to Bob, `BULK` per request, titled `nb<batch>.<n>`.
async fn assign(
    http: &reqwest::Client,
    token: &str,
    bob_id: &str,
    count: usize,
    run: &Run,
) -> anyhow::Result<()> {
    let url = format!("{}/tasks/bulk", platform::API);
    for (batch, from) in (0..count).step_by(BULK).enumerate() {
        let tasks: Vec<Value> = (from..(from + BULK).min(count))
            .map(|n| json!({"title": format!("nb{batch}.{n}"), "assignee_id": bob_id}))
            .collect();
        let reply = http
            .post(&url)
            .bearer_auth(token)
            .json(&json!({ "tasks": tasks }))
            .send()
            .await?;
        let status = reply.status();
        anyhow::ensure!(
            status.as_u16() == 201,
            "a bulk creation failed: {status} {}",
            reply.text().await?
        );
        run.answers.lock().unwrap().push(Instant::now());
    }
    Ok(())
}

/// Waits (at most ten minutes) until `count` tagged arrivals; rate over the run's start → the
/// `count`-th arrival, latency from the answer of each one's bulk request.
async fn wait(
    log: &Mutex<Arrivals>,
    run: &Run,
    count: usize,
    what: &str,
) -> anyhow::Result<Figures> {
    let deadline = run.started + Duration::from_secs(600);
    loop {
        let arrived: Vec<(Instant, usize)> = log
            .lock()
            .unwrap()
            .times
            .iter()
            .filter_map(|(at, batch)| Some((*at, (*batch)?)))
            .collect();
        if arrived.len() >= count {
            let answers = run.answers.lock().unwrap().clone();
            let last = arrived.iter().map(|a| a.0).max().unwrap_or(run.started);
            let latencies = arrived
                .iter()
                .filter_map(|(at, batch)| {
                    let answer = answers.get(*batch)?;
                    let ms = |i: &Instant| i.duration_since(run.started).as_secs_f64() * 1000.0;
                    Some(ms(at) - ms(answer))
                })
                .collect();
            return Ok(crate::figures(
                count,
                last.duration_since(run.started),
                latencies,
            ));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} {what} arrived",
            arrived.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A mail of about the size notify-svc sends (plain and HTML alternatives).
fn raw_mail(n: usize) -> anyhow::Result<Message> {
    let text = format!(
        "Hi Bob,\n\nAda assigned you “raw {n}”.\n\nOpen it: http://127.0.0.1:8080/tasks/{n}\n\n{}",
        "You get this mail because you are assigned tasks on Taskmesh. ".repeat(4)
    );
    let html = format!(
        "<html><body><p>Hi Bob,</p><p>Ada assigned you <b>“raw {n}”</b>.</p>\
         <p><a href=\"http://127.0.0.1:8080/tasks/{n}\">Open it</a></p><p>{}</p></body></html>",
        "You get this mail because you are assigned tasks on Taskmesh. ".repeat(8)
    );
    let from: Mailbox = "Taskmesh <taskmesh@localhost>".parse()?;
    let to: Mailbox = "Bob <bob@example.com>".parse()?;
    Ok(Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Ada assigned you “raw {n}”"))
        .message_id(Some(format!("<raw-{n}-{}@bench>", uuid::Uuid::new_v4())))
        .multipart(MultiPart::alternative_plain_html(text, html))?)
}

/// `count` mails through one transport built as notify-svc builds its own, `concurrency` sends
/// in flight; latency is each send's duration.
async fn raw_lettre(
    sink: &SmtpSink,
    url: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    // Built as notify-svc builds it (channels/mail.rs): 128 idle connections kept.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
        .timeout(Some(Duration::from_secs(10)))
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(128))
        .build();
    sink.log.lock().unwrap().reset();
    let started = Instant::now();
    let results: Vec<anyhow::Result<f64>> = futures::stream::iter(0..count)
        .map(|n| {
            let transport = transport.clone();
            async move {
                let mail = raw_mail(n)?;
                let sent = Instant::now();
                transport.send(mail).await?;
                Ok(sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let latencies = results.into_iter().collect::<anyhow::Result<Vec<f64>>>()?;
    let stats = sink.log.lock().unwrap().stats();
    let arrived = sink.log.lock().unwrap().times.len();
    anyhow::ensure!(arrived == count, "{arrived} of {count} raw mails arrived");
    println!(
        "raw lettre, {concurrency} in flight: {count} mails in {:.2} s over {} SMTP connections \
         (at most {} open), {} NOOPs, {:.0} bytes per mail",
        elapsed.as_secs_f64(),
        stats.connections,
        stats.max_open,
        stats.noops,
        stats.bytes
    );
    Ok(crate::figures(count, elapsed, latencies))
}

/// `count` POSTs of a webhook-sized body to the HTTP sink, `concurrency` in flight, through one
/// keep-alive client or (`fresh`) a new client per POST as notify-svc's delivery loop does.
async fn raw_http(
    sink: &HttpSink,
    count: usize,
    concurrency: usize,
    fresh: bool,
) -> anyhow::Result<Figures> {
    let url = format!("http://127.0.0.1:{}/hook", sink.port);
    let shared = reqwest::Client::new();
    sink.log.lock().unwrap().reset();
    let started = Instant::now();
    let results: Vec<anyhow::Result<f64>> = futures::stream::iter(0..count)
        .map(|n| {
            let client = match fresh {
                // Built as notify-svc builds a delivery's client (shared::outbound's TLS settings).
                true => shared::outbound::client_builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(10))
                    .build(),
                false => Ok(shared.clone()),
            };
            let url = url.clone();
            async move {
                let body = json!({"specversion": "1.0", "type": "task.assigned", "id": n,
                                  "data": {"title": format!("raw {n}"), "pad": "x".repeat(400)}});
                let sent = Instant::now();
                let status = client?
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", format!("raw-{n}"))
                    .body(body.to_string())
                    .send()
                    .await?
                    .status();
                anyhow::ensure!(status.is_success(), "the sink answered {status}");
                Ok(sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let latencies = results.into_iter().collect::<anyhow::Result<Vec<f64>>>()?;
    let connections = sink.log.lock().unwrap().connections;
    println!(
        "raw reqwest, {concurrency} in flight{}: {count} POSTs in {:.2} s over {connections} connections",
        if fresh { ", a new client per POST" } else { "" },
        elapsed.as_secs_f64()
    );
    Ok(crate::figures(count, elapsed, latencies))
}
