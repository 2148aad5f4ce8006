//! Follows the ends of sessions user-svc publishes ([`shared::sessions::ended_channel`]) for
//! [`Known`]. A subscription that fails, ends, or does not answer a ping within [`PING_EVERY`]
//! is counted as lost: nothing is trusted until a new one is confirmed (logged, and
//! `taskmesh_session_ends_followed` is 0 meanwhile).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shared::backoff::{Backoff, Policy};
use shared::config::RedisConfig;
use tokio_util::sync::CancellationToken;

use super::known::Known;

/// How often the subscription is pinged to show it is alive.
const PING_EVERY: Duration = Duration::from_secs(5);

const RECONNECT: Policy = Policy::exponential(Duration::from_millis(100), Duration::from_secs(5))
    .reset_after(Duration::from_secs(10));

/// Runs until `shutdown`.
pub async fn follow(config: RedisConfig, known: Arc<Known>, shutdown: CancellationToken) {
    let channel = shared::sessions::ended_channel(&config.key_prefix);
    let mut backoff = Backoff::new(RECONNECT);
    loop {
        let lost = tokio::select! {
            _ = shutdown.cancelled() => return,
            lost = subscribed(&config, &channel, &known) => lost,
        };
        known.following(false);
        metrics::gauge!("taskmesh_session_ends_followed").set(0.0);
        tracing::warn!(error = %lost, "not following session ends; every request asks Redis");
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// Subscribes, then applies ends until the subscription is lost; returns why.
async fn subscribed(config: &RedisConfig, channel: &str, known: &Known) -> anyhow::Error {
    let connect = shared::cache::subscribe(config, channel);
    let (sink, mut messages) = match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(split)) => split,
        Ok(Err(err)) => return err.into(),
        Err(_) => return anyhow::anyhow!("subscribing took more than 2 s"),
    };
    known.following(true);
    metrics::gauge!("taskmesh_session_ends_followed").set(1.0);
    tracing::info!("following session ends");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    // Pings run beside the messages (an end is applied while a ping waits); a failed one ends
    // the subscription.
    let (lost, mut ping_failed) = tokio::sync::mpsc::channel::<anyhow::Error>(1);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return anyhow::anyhow!("the subscription ended");
                };
                let ids = message.get_payload::<String>().ok();
                match ids.as_deref().and_then(shared::sessions::parse_ended) {
                    Some(ids) => known.ended(ids),
                    None => {
                        tracing::warn!("unreadable session end; forgetting every live answer");
                        known.forget();
                    }
                }
            }
            Some(failure) = ping_failed.recv() => return failure,
            _ = ping.tick() => {
                let (mut sink, lost) = (sink.clone(), lost.clone());
                tokio::spawn(async move {
                    let failure = match tokio::time::timeout(PING_EVERY, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => return,
                        Ok(Err(err)) => err.into(),
                        Err(_) => anyhow::anyhow!("no answer to a ping in {PING_EVERY:?}"),
                    };
                    let _ = lost.try_send(failure);
                });
            }
        }
    }
}
