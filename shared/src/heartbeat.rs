//! Workers' heartbeats in Redis: the contract between the worker, which writes its hash under
//! [`worker_key`] every few seconds, and task-svc, which lists them (`GET /api/v1/admin/workers`).

use chrono::{DateTime, Utc};

/// What every worker's key starts with; the rest is the worker's id.
pub fn workers_prefix(prefix: &str) -> String {
    format!("{prefix}workers:")
}

/// The key of worker `id`'s heartbeat (a Redis hash of [`Heartbeat::fields`]).
pub fn worker_key(prefix: &str, id: &str) -> String {
    format!("{}{id}", workers_prefix(prefix))
}

/// When the worker last wrote its heartbeat (RFC 3339).
pub const SEEN_AT: &str = "seen_at";

/// Set once when a worker stopped cleanly (RFC 3339).
pub const STOPPED_AT: &str = "stopped_at";

/// One heartbeat of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: String,
    pub pools: Vec<String>,
    pub host: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub concurrency: usize,
    pub in_flight: u64,
    pub processed: u64,
    pub failed: u64,
    /// Its pools that are paused.
    pub paused: Vec<String>,
}

impl Heartbeat {
    /// The hash fields written (numbers as decimal text, lists comma-separated).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("id", self.id.clone()),
            ("pools", self.pools.join(",")),
            ("host", self.host.clone()),
            ("version", self.version.clone()),
            ("started_at", self.started_at.to_rfc3339()),
            (SEEN_AT, self.seen_at.to_rfc3339()),
            ("concurrency", self.concurrency.to_string()),
            ("in_flight", self.in_flight.to_string()),
            ("processed", self.processed.to_string()),
            ("failed", self.failed.to_string()),
            ("paused", self.paused.join(",")),
        ]
    }
}

/// When a heartbeat's hash says the worker was last seen, if it says so readably.
pub fn seen_at(fields: &std::collections::HashMap<String, String>) -> Option<DateTime<Utc>> {
    fields
        .get(SEEN_AT)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_read_back_from_its_fields() {
        let now = Utc::now();
        let beat = Heartbeat {
            id: "w1".into(),
            pools: vec!["default".into(), "mail".into()],
            host: "h".into(),
            version: "1".into(),
            started_at: now,
            seen_at: now,
            concurrency: 4,
            in_flight: 1,
            processed: 9,
            failed: 0,
            paused: vec![],
        };
        let fields: std::collections::HashMap<String, String> = beat
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(seen_at(&fields), Some(now));
        assert_eq!(fields["pools"], "default,mail");
        assert_eq!(worker_key("tm:", "w1"), "tm:workers:w1");
    }
}
