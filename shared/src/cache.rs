//! Redis: one auto-reconnecting connection per service, keys under the configured prefix.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::config::RedisConfig;

/// Connects (retrying while Redis is down at start-up). The manager reconnects by itself later;
/// commands fail fast meanwhile, so callers can answer 503.
pub async fn connect(
    config: &RedisConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(config.url.expose_secret())?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(1);
    crate::unreachable::retry("redis", config.url.expose_secret(), shutdown, || {
        let client = client.clone();
        let manager_config = manager_config.clone();
        async move { Ok(ConnectionManager::new_with_config(client, manager_config).await?) }
    })
    .await
}

/// A connection of its own subscribed to `channel`, split into its sink (to ping it) and its
/// messages. Unlike [`connect`], it is not re-made: the caller notices the end of the messages
/// and subscribes again.
pub async fn subscribe(
    config: &RedisConfig,
    channel: &str,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let client = redis::Client::open(config.url.expose_secret())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub.split())
}

/// `PING`, for readiness.
pub async fn ping(conn: &ConnectionManager) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

/// The Redis key holding the pools an admin paused (a JSON list of names): task-svc writes it,
/// workers read it (`POST /api/v1/admin/pools/{pool}/pause`).
pub fn paused_pools_key(prefix: &str) -> String {
    format!("{prefix}pools:paused")
}

/// The Redis key that tells workers not to start a cancelled job's dispatch: task-svc sets it,
/// workers read it before running.
pub fn cancel_mark_key(prefix: &str, task_id: uuid::Uuid) -> String {
    format!("{prefix}jobs:cancelled:{task_id}")
}

/// The Redis key of a dispatch's claim (`run:<run id>` while a run holds it, `done:<outcome>`
/// once it finished): one run per dispatch across redeliveries.
pub fn dispatch_claim_key(prefix: &str, dispatch_id: uuid::Uuid) -> String {
    format!("{prefix}jobs:dispatch:{dispatch_id}")
}

/// How long a finished dispatch's claim says so: longer than any redelivery takes.
pub const DISPATCH_DONE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Adds to `pipe` the mark that dispatch `dispatch_id` finished (`done:<outcome>` on its claim,
/// whoever holds it): a copy of it that a worker receives is settled without running. Written
/// by task-svc as it applies the run's report, and by the worker once the broker confirmed it.
pub fn mark_dispatch_done(
    pipe: &mut redis::Pipeline,
    prefix: &str,
    dispatch_id: uuid::Uuid,
    outcome: &str,
) {
    pipe.cmd("SET")
        .arg(dispatch_claim_key(prefix, dispatch_id))
        .arg(format!("done:{outcome}"))
        .arg("PX")
        .arg(DISPATCH_DONE_TTL.as_millis() as u64)
        .ignore();
}

/// What the workers send to Redis, and nothing more: their heartbeats (`HMSET`, `HSET`,
/// `EXPIRE`), the claim scripts (`EVALSHA`, and `SCRIPT LOAD` when Redis lost them; inside them
/// `GET`, `SET`, `EXISTS`, `PEXPIRE`, `DEL`), the paused pools (`GET`) and readiness (`PING`).
/// No `SELECT`: the workers' Redis URL names database 0.
/// (The client's `CLIENT SETINFO` at connection is refused and ignored; naming it would fail on
/// Redis before 7.2, which does not know it.)
const WORKER_COMMANDS: &[&str] = &[
    "ping",
    "get",
    "set",
    "del",
    "exists",
    "pexpire",
    "expire",
    "hset",
    "hmset",
    "evalsha",
    "script|load",
];

/// The ACL rules of the workers' own Redis user (`ACL SETUSER <user> reset on ><password>
/// <rules>`, or a `user` line of an ACL file): read and write on their heartbeats
/// (`workers:*`) and the job keys (`jobs:*`: claims, cancel marks), read-only on the paused
/// pools, the commands they send, no pub/sub channel. Nothing the services trust (sessions,
/// stream tickets, rate limits, idempotency records) is in reach, nor is any key's name (no
/// `KEYS` or `SCAN`).
pub fn worker_acl_rules(prefix: &str) -> Vec<String> {
    let prefix = glob_escape(prefix);
    let mut rules = vec![
        format!("~{prefix}workers:*"),
        format!("~{prefix}jobs:*"),
        format!("%R~{prefix}pools:paused"),
        "resetchannels".to_string(),
        "-@all".to_string(),
    ];
    rules.extend(WORKER_COMMANDS.iter().map(|command| format!("+{command}")));
    rules
}

/// `text` matched literally by a Redis glob pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_rules_name_their_keys_under_the_prefix_literally() {
        let rules = worker_acl_rules("a*b:");
        assert_eq!(
            rules[..3],
            ["~a\\*b:workers:*", "~a\\*b:jobs:*", "%R~a\\*b:pools:paused"]
        );
        assert!(rules.contains(&"-@all".to_string()));
        assert!(!rules
            .iter()
            .any(|r| r.contains("session") || r == "~*" || r == "+@all"));
    }
}
