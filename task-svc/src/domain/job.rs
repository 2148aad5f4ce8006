//! A task's job: what a client asks for ([`JobSpec`]), checked into [`ParsedJob`], and what it
//! sees of it ([`JobView`]); the states of a job, its retry delay and its AMQP priority. Pure:
//! no I/O.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{config::JobsConfig, topology::valid_pool};
use uuid::Uuid;

use crate::{domain::status::Status, error::TaskError};

/// The `job` object of `POST /api/v1/tasks`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Which handler runs it: a built-in (`http`, `sleep`, `noop`, `command`) or one a worker
    /// registered; 1 to 64 of `a-z 0-9 . _ -`.
    pub kind: String,
    /// The handler's input (at most `jobs.max_payload_bytes` of JSON). Documented as an object,
    /// what handlers expect; any JSON value is taken and kept as it is.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// The worker pool (default `default`).
    pub pool: Option<String>,
    /// Run not before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Recurring: a cron expression (5 fields, or 6 with seconds first), evaluated in UTC. The
    /// task becomes a template; each tick creates one run (a task of its own).
    pub cron: Option<String>,
    /// Runs before the job is dead (the first counts), 1 to 100.
    pub max_attempts: Option<u32>,
    /// Backoff before the first retry, doubled per retry with ±25 % jitter, capped by
    /// `backoff_max_ms`.
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    /// How long one run may take before the worker stops it (counts as a failed attempt).
    pub timeout_secs: Option<u64>,
    /// While a job with this key is live, creating another returns it (200) instead.
    pub unique_key: Option<String>,
    /// A per-key limit shared with the owner's other jobs of the same key: it waits (without
    /// holding a worker) while the key has `concurrency` jobs in flight, and starts at most
    /// `per_second` a second. Not with `run_at`.
    pub limit: Option<crate::domain::limit::Limit>,
}

/// A validated [`JobSpec`].
#[derive(Debug, Clone)]
pub struct ParsedJob {
    pub kind: String,
    pub payload: Value,
    pub pool: String,
    pub run_at: Option<DateTime<Utc>>,
    pub cron: Option<(String, cron::Schedule)>,
    pub max_attempts: i32,
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    pub timeout_ms: i64,
    pub unique_key: Option<String>,
    /// A workflow step waiting for the steps it needs: written `pending`, not dispatched.
    pub held: bool,
    /// A workflow step's part of its dispatch (its workflow, id, inputs, item).
    pub step: Option<crate::domain::workflow::StepRun>,
    /// Its key's limit: it starts when the key admits it.
    pub limit: Option<crate::domain::limit::Limit>,
}

impl ParsedJob {
    /// The status a new task with this job starts in.
    pub fn initial_status(&self) -> Status {
        if self.held {
            Status::Pending
        } else if self.cron.is_some() || self.run_at.is_some_and(|at| at > Utc::now()) {
            Status::Scheduled
        } else {
            Status::Queued
        }
    }
}

fn invalid(detail: impl Into<String>) -> TaskError {
    TaskError::invalid("invalid_job", detail)
}

/// Parses a cron expression: 5 fields (minute first) or 6 (seconds first), in UTC.
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, TaskError> {
    let fields = expression.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expression}"),
        6 => expression.to_string(),
        _ => {
            return Err(invalid(
                "cron has 5 fields (minute hour day month weekday) or 6 (seconds first)",
            ))
        }
    };
    let schedule = cron::Schedule::from_str(&full)
        .map_err(|e| invalid(format!("cron expression {expression:?}: {e}")))?;
    if schedule.upcoming(Utc).next().is_none() {
        return Err(invalid("this cron expression never fires again"));
    }
    Ok(schedule)
}

pub fn parse(spec: &JobSpec, config: &JobsConfig) -> Result<ParsedJob, TaskError> {
    let kind = spec.kind.trim();
    let kind_ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !kind_ok {
        return Err(invalid("kind must be 1 to 64 of a-z 0-9 . _ -"));
    }
    let size = serde_json::to_vec(&spec.payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > config.max_payload_bytes {
        return Err(invalid(format!(
            "payload is {size} bytes; the limit is {}",
            config.max_payload_bytes
        )));
    }
    let pool = spec.pool.clone().unwrap_or_else(|| "default".into());
    if !valid_pool(&pool) {
        return Err(invalid(
            "pool must be 1 to 40 of a-z 0-9 _ -, starting with a letter or digit",
        ));
    }
    if spec.run_at.is_some() && spec.cron.is_some() {
        return Err(invalid("give run_at or cron, not both"));
    }
    let cron = match &spec.cron {
        Some(expression) => Some((expression.trim().to_string(), parse_cron(expression)?)),
        None => None,
    };
    let max_attempts = spec.max_attempts.unwrap_or(config.default_max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(invalid("max_attempts must be 1 to 100"));
    }
    let base = spec.backoff_base_ms.unwrap_or(config.backoff_base_ms);
    let max = spec
        .backoff_max_ms
        .unwrap_or(config.backoff_max_ms.max(base));
    if base == 0 || base > 86_400_000 || max < base || max > 7 * 86_400_000 {
        return Err(invalid(
            "backoff_base_ms must be 1 to 86400000 and backoff_max_ms between it and 7 days",
        ));
    }
    let timeout = spec.timeout_secs.unwrap_or(config.default_timeout_secs);
    if timeout == 0 || timeout > config.max_timeout_secs {
        return Err(invalid(format!(
            "timeout_secs must be 1 to {}",
            config.max_timeout_secs
        )));
    }
    let unique_key = match spec.unique_key.as_deref().map(str::trim) {
        Some(key) if key.is_empty() || key.chars().count() > 200 => {
            return Err(invalid("unique_key must be 1 to 200 characters"))
        }
        Some(key) => Some(key.to_string()),
        None => None,
    };
    let limit = spec
        .limit
        .as_ref()
        .map(crate::domain::limit::parse)
        .transpose()?;
    if limit.is_some() && spec.run_at.is_some() {
        return Err(invalid(
            "give run_at or limit, not both: a limited job starts when its key admits it",
        ));
    }
    Ok(ParsedJob {
        kind: kind.to_string(),
        payload: spec.payload.clone(),
        pool,
        run_at: spec.run_at,
        cron,
        max_attempts: max_attempts as i32,
        backoff_base_ms: base as i64,
        backoff_max_ms: max as i64,
        timeout_ms: (timeout * 1000) as i64,
        unique_key,
        held: false,
        step: None,
        limit,
    })
}

/// What a client sees of a task's job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    pub kind: String,
    /// Any JSON value; `null` when none was given.
    pub payload: Value,
    pub pool: String,
    pub run_at: Option<DateTime<Utc>>,
    pub cron: Option<String>,
    /// A cron template's next tick.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The cron template this run belongs to, and its tick.
    pub parent_id: Option<Uuid>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    pub timeout_ms: i64,
    pub unique_key: Option<String>,
    /// The current attempt (1 during the first run; 0 before any).
    pub attempt: i32,
    /// The latest progress a handler reported: `{percent, message}`.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Value>,
    /// What the handler returned: any JSON value.
    pub result: Option<Value>,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub limit: Option<crate::domain::limit::Limit>,
    /// With a limit: `waiting` (over it, not yet dispatched) or `admitted` (holding one of its
    /// key's places until it ends).
    pub limit_state: Option<String>,
    /// Since when it waited for its limit.
    pub limit_since: Option<DateTime<Utc>>,
}

/// One run of a job.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Attempt {
    pub run_id: Uuid,
    pub dispatch_id: Uuid,
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `timed_out`, `cancelled`, `interrupted` (handed back
    /// at shutdown) or `lost` (the worker died; the broker gave the job to another run).
    pub outcome: String,
    pub error: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Value>,
}

/// A dead job, as admins list it.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeadJob {
    pub task_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub kind: String,
    pub pool: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub died_at: Option<DateTime<Utc>>,
}

/// Which dead jobs an admin call is about: given ids, or all (of a pool).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadSelection {
    /// Only this pool's.
    pub pool: Option<String>,
    /// Only these tasks (at most 1000).
    #[schema(max_items = 1000)]
    pub task_ids: Option<Vec<Uuid>>,
}

/// The delay before attempt `failed + 1`: base × 2^(failed−1), capped, ±25 % jitter.
pub fn backoff(base_ms: i64, max_ms: i64, failed: i32) -> Duration {
    let exponent = (failed.max(1) - 1).min(40) as u32;
    let raw = (base_ms as f64) * 2f64.powi(exponent as i32);
    let capped = raw.min(max_ms as f64);
    let jitter = rand::thread_rng().gen_range(0.75..=1.25);
    Duration::milliseconds((capped * jitter).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for _ in 0..100 {
            let first = backoff(1000, 10_000, 1).num_milliseconds();
            assert!((750..=1250).contains(&first), "{first}");
            let third = backoff(1000, 10_000, 3).num_milliseconds();
            assert!((3000..=5000).contains(&third), "{third}");
            let late = backoff(1000, 10_000, 30).num_milliseconds();
            assert!((7500..=12_500).contains(&late), "{late}");
        }
    }

    #[test]
    fn cron_takes_five_or_six_fields() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("* * * * * *").is_ok());
        assert!(parse_cron("* * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn a_job_is_validated_at_the_edge() {
        let config = JobsConfig::default();
        let spec = |json: Value| serde_json::from_value::<JobSpec>(json).unwrap();
        let ok = parse(&spec(serde_json::json!({"kind": "noop"})), &config).unwrap();
        assert_eq!(ok.pool, "default");
        assert_eq!(ok.initial_status(), Status::Queued);
        for bad in [
            serde_json::json!({"kind": "Bad Kind"}),
            serde_json::json!({"kind": "noop", "pool": "../x"}),
            serde_json::json!({"kind": "noop", "max_attempts": 0}),
            serde_json::json!({"kind": "noop", "timeout_secs": 0}),
            serde_json::json!({"kind": "noop", "cron": "* * * * *", "run_at": "2030-01-01T00:00:00Z"}),
            serde_json::json!({"kind": "noop", "payload": "x".repeat(70_000)}),
        ] {
            assert!(parse(&spec(bad.clone()), &config).is_err(), "{bad}");
        }
        let later =
            spec(serde_json::json!({"kind": "noop", "run_at": Utc::now() + Duration::hours(1)}));
        assert_eq!(
            parse(&later, &config).unwrap().initial_status(),
            Status::Scheduled
        );
    }
}

/// A live cron template's own fields, as the operator's list shows them.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CronTemplateRow {
    pub task_id: Uuid,
    pub title: String,
    pub owner_id: Uuid,
    pub kind: String,
    pub pool: String,
    pub cron: String,
    /// When an admin paused it; absent while it runs.
    pub paused_at: Option<DateTime<Utc>>,
    /// How many runs it made.
    pub runs: i64,
}
