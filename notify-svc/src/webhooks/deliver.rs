//! The delivery loop: claims due deliveries (a lease, so each attempt happens once over every
//! replica and a crashed replica's claims come back), sends each signed, and records the
//! outcome: delivered, retried on the schedule, failed, or the endpoint disabled.
//!
//! At most `webhooks.concurrency` attempts are in flight in this process and at most
//! `webhooks.per_endpoint` per endpoint over all replicas (the claim counts leased rows), so a
//! slow or dead endpoint holds only its own share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::{
    backoff::{Backoff, Policy},
    outbound::Guard,
    seal::Unsealable,
};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::model::{display_url, DeliveryState};
use super::schedule;
use super::sign::{self, Secret};
use super::store::{self, AttemptLog, Claimed};
use crate::domain::recipients::{Change, Draft};
use crate::domain::Kind;
use crate::AppState;

/// How often the loop looks for due deliveries when it found none.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// A lease outlasts the attempt's timeout by this much (resolving the name, recording).
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// The most of an answer's body kept in the log.
const EXCERPT_BYTES: usize = 1024;
const USER_AGENT: &str = "Taskmesh-Webhooks/1";
/// How many deliveries of one endpoint a slot sends in a row, each leased as the one before it
/// is recorded delivered, and for how long at most, before the slot goes back to the loop and
/// other endpoints' claims.
const SUCCESSIONS: u32 = 64;
const SUCCESSION_TIME: Duration = Duration::from_secs(1);

/// Delivers due deliveries until `shutdown`, then lets the attempts in flight finish.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let config = &state.config.webhooks;
    let guard = match Guard::new("webhooks.allow", &config.allow) {
        Ok(guard) => Arc::new(guard),
        Err(err) => {
            tracing::error!(error = %err, "webhooks.allow is invalid; webhooks are not delivered");
            return;
        }
    };
    let timeout = Duration::from_secs(config.timeout_secs);
    let lease = timeout + LEASE_MARGIN;
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let room = store::Room {
        per_endpoint: config.per_endpoint,
        per_user: config.per_user,
    };
    // Signalled when an attempt finishes: its endpoint has room again, so the next claim need
    // not wait for the idle poll (with one busy endpoint that poll capped it at ~20/s).
    let finished = Arc::new(Notify::new());
    let mut in_flight = JoinSet::new();
    // While PostgreSQL is away, claims are tried less and less often (not every idle poll).
    let mut unclaimable = Backoff::new(Policy::exponential(IDLE_POLL, Duration::from_secs(2)));
    while !shutdown.is_cancelled() {
        while in_flight.try_join_next().is_some() {}
        let free = permits.available_permits();
        let claimed = match free {
            0 => Vec::new(),
            _ => match store::claim(&state.pool, free, room, lease).await {
                Ok(claimed) => {
                    unclaimable.reset();
                    claimed
                }
                Err(err) => {
                    tracing::warn!(error = %err, "claiming webhook deliveries failed");
                    if !unclaimable.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            },
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = finished.notified() => {}
            }
            continue;
        }
        for delivery in claimed {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (state, guard, finished) = (state.clone(), guard.clone(), finished.clone());
            let shutdown = shutdown.clone();
            in_flight.spawn(async move {
                // A delivered attempt hands its lease on to the endpoint's next due delivery in
                // the statement that records it: a backlog goes out without a claim per row.
                let (started, mut turns) = (Instant::now(), 0);
                let mut next = Some(delivery);
                while let Some(delivery) = next {
                    turns += 1;
                    let successor = || {
                        let more = turns < SUCCESSIONS && started.elapsed() < SUCCESSION_TIME;
                        (more && !shutdown.is_cancelled()).then_some(lease)
                    };
                    next = attempt(&state, &guard, delivery, timeout, successor).await;
                }
                drop(permit);
                finished.notify_one();
            });
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// How an attempt went.
#[derive(Debug)]
enum Verdict {
    /// A 2xx.
    Delivered,
    Undelivered(Failure),
}

/// Why an attempt did not deliver.
#[derive(Debug)]
enum Failure {
    /// `410 Gone`: the receiver wants no more.
    Gone,
    /// Anything else: try again per the schedule, not sooner than `retry_after`.
    Retry { retry_after: Option<Duration> },
}

/// Sends `delivery` once and records the outcome; delivered, and given a lease by `successor`
/// (asked once the answer is in), the endpoint's next due delivery, leased for it.
#[tracing::instrument(skip_all, fields(delivery_id = %delivery.id, endpoint_id = %delivery.endpoint_id))]
async fn attempt(
    state: &AppState,
    guard: &Guard,
    delivery: Claimed,
    timeout: Duration,
    successor: impl FnOnce() -> Option<Duration>,
) -> Option<Claimed> {
    let started = Instant::now();
    let (verdict, mut log) = match secrets(state, &delivery) {
        Ok(secrets) => send(guard, &delivery, &secrets, timeout).await,
        Err(err) => {
            tracing::error!(error = %err, "a webhook endpoint's secret cannot be opened");
            failed(format!("its signing secret cannot be opened: {err}"))
        }
    };
    log.latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let recorded = match verdict {
        Verdict::Delivered => store::delivered(&state.pool, &delivery, &log, successor())
            .await
            .map(|next| ("delivered", next)),
        Verdict::Undelivered(failure) => record(state, &delivery, failure, &log)
            .await
            .map(|outcome| (outcome, None)),
    };
    match recorded {
        Ok((outcome, next)) => {
            metrics::counter!("taskmesh_webhook_deliveries_total", "outcome" => outcome)
                .increment(1);
            tracing::debug!(outcome, status = ?log.status, "webhook attempt");
            next
        }
        Err(err) => {
            // The lease runs out and the delivery is tried again: at least once, not lost.
            tracing::warn!(error = %err, "recording a webhook attempt failed");
            None
        }
    }
}

/// The delivery's signing secrets (the previous one while its overlap lasts), opened.
fn secrets(state: &AppState, delivery: &Claimed) -> Result<Vec<Secret>, Unsealable> {
    std::iter::once(&delivery.secret)
        .chain(&delivery.previous_secret)
        .map(|sealed| state.at_rest.open_text_or_clear(sealed).map(Secret::from))
        .collect()
}

/// An attempt that reached no answer.
fn failed(error: String) -> (Verdict, AttemptLog) {
    let log = AttemptLog {
        status: None,
        error: Some(clean(&error)),
        latency_ms: 0,
        response_excerpt: None,
    };
    (
        Verdict::Undelivered(Failure::Retry { retry_after: None }),
        log,
    )
}

async fn send(
    guard: &Guard,
    delivery: &Claimed,
    secrets: &[Secret],
    timeout: Duration,
) -> (Verdict, AttemptLog) {
    let url = match url::Url::parse(&delivery.url) {
        Ok(url) => url,
        Err(err) => return failed(format!("invalid url: {err}")),
    };
    // Checked again now: the name may point inside since the endpoint was saved. Resolving is
    // bounded by the attempt's timeout, so an attempt cannot outlive its lease.
    let addrs = match tokio::time::timeout(timeout, guard.check(&url)).await {
        Ok(Ok(addrs)) => addrs,
        Ok(Err(refusal)) => return failed(refusal.to_string()),
        Err(_) => return failed(format!("resolving the host took over {timeout:?}")),
    };
    let client = match guard.client(&url, &addrs, timeout) {
        Ok(client) => client,
        Err(err) => return failed(err.without_url().to_string()),
    };
    let msg_id = sign::message_id(delivery.id);
    let timestamp = Utc::now().timestamp();
    let secrets: Vec<&Secret> = secrets.iter().collect();
    let signature = sign::signature_header(&secrets, &msg_id, timestamp, &delivery.body);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", USER_AGENT)
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(err) => return failed(describe(&err)),
    };
    let status = response.status();
    let retry_after = match status.as_u16() {
        429 | 503 => response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| schedule::parse_retry_after(v, Utc::now())),
        _ => None,
    };
    let (excerpt, read_error) = excerpt(&mut response).await;
    // An endpoint the allow-list lets inside the network is someone else's service: its owner
    // sees whether and how it answered, never what it said.
    let excerpt = keeps_excerpt(&addrs).then_some(excerpt);
    let verdict = if status.is_success() {
        Verdict::Delivered
    } else if status.as_u16() == 410 {
        Verdict::Undelivered(Failure::Gone)
    } else {
        Verdict::Undelivered(Failure::Retry { retry_after })
    };
    let log = AttemptLog {
        status: Some(status.as_u16()),
        error: read_error.map(|e| clean(&e)),
        latency_ms: 0,
        response_excerpt: excerpt,
    };
    (verdict, log)
}

/// Whether an answer's excerpt is kept for the endpoint's owner: only when the endpoint is on
/// public addresses.
fn keeps_excerpt(addrs: &[std::net::SocketAddr]) -> bool {
    !addrs
        .iter()
        .any(|addr| shared::outbound::is_internal(addr.ip()))
}

/// The first KiB of the answer's body as text, and why reading it stopped early, if it did.
async fn excerpt(response: &mut reqwest::Response) -> (String, Option<String>) {
    let mut bytes = Vec::new();
    let mut error = None;
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                error = Some(format!("reading the answer: {}", describe(&err)));
                break;
            }
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let mut text = clean(&String::from_utf8_lossy(&bytes));
    while text.len() > EXCERPT_BYTES {
        text.pop();
    }
    (text, error)
}

/// A reqwest error without its URL (which may carry a token).
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect error"
    } else {
        "error"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Text PostgreSQL accepts (no NUL), at most a KiB.
fn clean(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| *c != '\0').collect();
    if out.len() > EXCERPT_BYTES {
        let mut end = EXCERPT_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Writes an undelivered attempt and its consequences in one transaction; the outcome.
async fn record(
    state: &AppState,
    delivery: &Claimed,
    failure: Failure,
    log: &AttemptLog,
) -> Result<&'static str, sqlx::Error> {
    let config = &state.config.webhooks;
    let mut tx = state.pool.begin().await?;
    store::log_attempt(&mut tx, delivery.id, log).await?;
    let outcome = match failure {
        Failure::Gone => {
            store::finish_attempt(
                &mut tx,
                delivery.id,
                log.status,
                DeliveryState::Failed,
                None,
            )
            .await?;
            disable(
                state,
                &mut tx,
                delivery.endpoint_id,
                "the endpoint answered 410 Gone",
            )
            .await?;
            "gone"
        }
        Failure::Retry { retry_after } => {
            let made = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
            let outcome = match schedule::next_delay(&config.schedule_secs, made, retry_after) {
                Some(delay) => {
                    store::finish_attempt(
                        &mut tx,
                        delivery.id,
                        log.status,
                        DeliveryState::Pending,
                        Some(delay),
                    )
                    .await?;
                    "retrying"
                }
                None => {
                    store::finish_attempt(
                        &mut tx,
                        delivery.id,
                        log.status,
                        DeliveryState::Failed,
                        None,
                    )
                    .await?;
                    "failed"
                }
            };
            let disable_after = Duration::from_secs(config.disable_after_secs);
            if store::endpoint_failed(&mut tx, delivery.endpoint_id, disable_after).await? {
                let days = config.disable_after_secs as f64 / 86400.0;
                let reason = format!("every delivery failed for {days:.1} days");
                disable(state, &mut tx, delivery.endpoint_id, &reason).await?;
            }
            outcome
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Disables the endpoint and tells its owner (once: only when this disabled it), in-app and
/// by mail as their preferences for `webhook.disabled` say.
async fn disable(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    endpoint_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let Some((owner, url)) = store::disable_endpoint(tx, endpoint_id, reason).await? else {
        return Ok(());
    };
    tracing::info!(%endpoint_id, reason, "webhook endpoint disabled");
    let draft = Draft {
        user_id: owner,
        kind: Kind::WebhookDisabled,
        actor_id: None,
        subject: Some(endpoint_id),
        link_path: Some(format!("/api/v1/webhooks/{endpoint_id}")),
        change: Change::WebhookDisabled {
            url: display_url(&url),
            reason: reason.to_string(),
        },
    };
    crate::service::fanout::tell(state, tx, &draft).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_only_from_public_addresses() {
        let at = |ip: &str| std::net::SocketAddr::new(ip.parse().unwrap(), 443);
        assert!(keeps_excerpt(&[at("93.184.216.34")]));
        assert!(keeps_excerpt(&[at("2606:2800:220:1::1")]));
        // Allow-listed inside the network: status and latency only.
        assert!(!keeps_excerpt(&[at("127.0.0.1")]));
        assert!(!keeps_excerpt(&[at("10.1.2.3")]));
        assert!(!keeps_excerpt(&[at("93.184.216.34"), at("192.168.0.7")]));
        assert!(!keeps_excerpt(&[at("fd00::1")]));
    }
}
