//! A store (or a service another one needs) that cannot be used, told to a person: one line per
//! store every few seconds, however many services and consumers wait for it, naming it, where
//! it was looked for and what to run or set. Every try in between is logged at debug.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The gap between two lines about the same store.
pub const EVERY: Duration = Duration::from_secs(5);

/// What a person needs to know about a store: its name, its default port, and the setting
/// that points at it.
fn known(dependency: &str) -> (&str, Option<u16>, &'static str) {
    match dependency {
        "postgres" => ("PostgreSQL", Some(5432), "TASKMESH_POSTGRES__URL"),
        "rabbitmq" => ("RabbitMQ", Some(5672), "TASKMESH_AMQP__URL"),
        "rabbitmq-management" => (
            "RabbitMQ's management API",
            None,
            "TASKMESH_AMQP__MANAGEMENT_URL",
        ),
        "redis" => ("Redis", Some(6379), "TASKMESH_REDIS__URL"),
        "user-svc" => ("user-svc", None, "TASKMESH_USER__URL"),
        other => (other, None, "its URL setting"),
    }
}

/// Where `url` points, as `host:port`: never its credentials or path.
pub fn address(dependency: &str, url: &str) -> String {
    let (_, default_port, _) = known(dependency);
    match url::Url::parse(url) {
        Ok(url) => match (url.host_str(), url.port().or(default_port)) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => "(its URL names no host)".into(),
        },
        Err(_) => "(its URL cannot be read)".into(),
    }
}

/// Reports that `dependency` at `url` failed with `error`: a warning naming it, its address and
/// what to do, unless one went out less than [`EVERY`] ago in this process (then at debug, by
/// `who`). Returns whether the warning went out.
pub fn report(dependency: &str, url: &str, who: &str, error: &str) -> bool {
    static LAST: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    let now = Instant::now();
    let due = {
        let mut last = LAST
            .get_or_init(Mutex::default)
            .lock()
            .expect("never poisoned");
        match last.get(dependency) {
            Some(at) if now.duration_since(*at) < EVERY => false,
            _ => {
                last.insert(dependency.to_string(), now);
                true
            }
        }
    };
    let address = address(dependency, url);
    if !due {
        tracing::debug!(dependency, %address, who, error, "still waiting");
        return false;
    }
    let (name, _, setting) = known(dependency);
    tracing::warn!(
        dependency,
        %address,
        error,
        "{name} at {address} cannot be used yet: start it, or set {setting} to where it runs; \
         retrying (this line repeats every {}s while it lasts)",
        EVERY.as_secs()
    );
    true
}

/// Runs `attempt` until it succeeds, backing off from 200 ms to 5 s; failures are told once
/// every few seconds per store ([`crate::unreachable`]), with `url`'s address. Fails only when
/// `shutdown` fires first.
pub async fn retry<T, F, Fut>(
    dependency: &str,
    url: &str,
    shutdown: &tokio_util::sync::CancellationToken,
    attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let reported = |err: &anyhow::Error| {
        report(dependency, url, "start-up", &format!("{err:#}"));
        true
    };
    crate::backoff::retry(STORE, shutdown, reported, attempt)
        .await
        .map_err(|_| anyhow::anyhow!("shut down while waiting for {dependency}"))
}

/// The waits between tries of a store at start-up: 200 ms, doubling up to 5 s.
pub const STORE: crate::backoff::Policy =
    crate::backoff::Policy::exponential(Duration::from_millis(200), Duration::from_secs(5));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_never_shows_credentials_and_knows_the_default_ports() {
        assert_eq!(
            address("rabbitmq", "amqp://guest:secret@mq.internal/%2f"),
            "mq.internal:5672"
        );
        assert_eq!(
            address("postgres", "postgres://app:pw@10.0.0.5:6432/tasks"),
            "10.0.0.5:6432"
        );
        assert_eq!(address("redis", "redis://:pw@cache"), "cache:6379");
        assert_eq!(
            address("redis", "not a url with pw"),
            "(its URL cannot be read)"
        );
    }

    #[test]
    fn one_line_per_store_per_gap_whoever_asks() {
        let url = "amqp://127.0.0.1:1/%2f";
        assert!(report("test-store-a", url, "consumer 1", "refused"));
        assert!(!report("test-store-a", url, "consumer 2", "refused"));
        assert!(!report("test-store-a", url, "consumer 1", "refused"));
        // Another store has its own gap.
        assert!(report("test-store-b", url, "consumer 1", "refused"));
    }
}
