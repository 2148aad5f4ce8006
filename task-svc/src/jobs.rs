//! Automated tasks: a task that carries a job runs on a worker pool.
//!
//! Its status follows the job: `scheduled` (waiting for `run_at`, or a cron template) →
//! `queued` → `running` → `completed`, or `retrying` (waiting for its backoff), `dead` (attempts
//! used up; in the pool's dead-letter queue) or `cancelled`. Every hand-over to a pool is a
//! *dispatch*: an outbox row (so it survives any restart; `available_at` delays it) published on
//! `job.dispatch.<pool>` with the task's priority. Workers report `job.started`,
//! `job.progress` and `job.finished`; [`JobReports`] applies each report once, whatever the
//! order or duplication, and decides what happens next (retry with backoff, dead-letter,
//! completion). Every run is recorded in `job_attempts`.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    broker::Broker,
    config::JobsConfig,
    consumer::{BatchHandler, Handler, HandlerError, Incoming},
    events::{
        CloudEvent, EventPayload, JobCancel, JobDispatch, JobFinished, JobOutcome, JobProgress,
        JobStarted, TaskAssigned, TaskCompleted, TaskDead, TaskFailed,
    },
    idempotency,
    identity::Identity,
    outbox::{self, Route},
    problem::{JsonBody, ProblemBody},
    topology::{valid_pool, PoolTopology},
    ApiError,
};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{cache, tasks::Task, AppState, SERVICE};

/// Consumer name of the report handler in `processed_events`.
pub const CONSUMER: &str = "task-svc.job-reports";

/// States of an automated task that are not final.
pub const LIVE: [&str; 5] = ["pending", "scheduled", "queued", "running", "retrying"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks/{id}/attempts", get(attempts))
        .route("/api/v1/tasks/{id}/cancel", post(cancel))
        .route("/api/v1/admin/jobs/dead", get(dead_list).delete(dead_purge))
        .route("/api/v1/admin/jobs/dead/replay", post(dead_replay))
        .route("/api/v1/workers", get(workers))
}

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
}

impl ParsedJob {
    /// The status a new task with this job starts in.
    pub fn initial_status(&self) -> &'static str {
        if self.cron.is_some() || self.run_at.is_some_and(|at| at > Utc::now()) {
            "scheduled"
        } else {
            "queued"
        }
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_job", detail)
}

/// Parses a cron expression: 5 fields (minute first) or 6 (seconds first), in UTC.
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, ApiError> {
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

pub fn parse(spec: &JobSpec, config: &JobsConfig) -> Result<ParsedJob, ApiError> {
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
    })
}

/// What a client sees of a task's job.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
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
}

const VIEW_COLUMNS: &str = "kind, payload, pool, run_at, cron, next_run_at, parent_id, \
    scheduled_for, max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, unique_key, attempt, \
    progress, result, last_error, started_at, finished_at";

/// Attaches their jobs to `tasks` (one query for the page).
pub async fn attach(conn: &mut PgConnection, tasks: &mut [Task]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, sqlx::types::Json<JobView>)> = sqlx::query_as(&format!(
        "SELECT task_id, to_jsonb(v) FROM (SELECT task_id, {VIEW_COLUMNS} FROM jobs
           WHERE task_id = ANY($1)) v"
    ))
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut views: HashMap<Uuid, JobView> = rows.into_iter().map(|(id, v)| (id, v.0)).collect();
    for task in tasks {
        task.job = views.remove(&task.id);
    }
    Ok(())
}

/// Pool queues this process has declared; a dispatch to a pool is only written once its queue
/// exists, so the relay never finds it unroutable.
#[derive(Clone)]
pub struct Pools {
    broker: Broker,
    declared: Arc<Mutex<HashSet<String>>>,
}

impl Pools {
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            declared: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Declares `pool`'s queues unless this process already did; 503 if RabbitMQ is down.
    pub async fn ensure(&self, pool: &str) -> Result<(), ApiError> {
        let mut declared = self.declared.lock().await;
        if declared.contains(pool) {
            return Ok(());
        }
        let topology = PoolTopology::new(&self.broker, pool);
        let result = async {
            let channel = self.broker.channel().await?;
            topology.declare(&self.broker, &channel).await?;
            channel.close(200, "declared").await
        }
        .await;
        match result {
            Ok(()) => {
                declared.insert(pool.to_string());
                Ok(())
            }
            Err(err) => {
                tracing::warn!(%pool, error = %err, "cannot declare a pool's queue");
                Err(ApiError::unavailable("rabbitmq"))
            }
        }
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

/// Outcome of writing a new job.
pub enum Inserted {
    /// Written; these events (its first dispatch and `task.assigned`, unless it waits for a
    /// cron tick) go to the outbox with the caller's.
    Created(Box<JobView>, Vec<outbox::Pending>),
    /// A live job with the same `unique_key` exists: this one.
    Duplicate(Uuid),
}

/// Writes the job of the just-inserted `task` and prepares its first dispatch. Inside the
/// caller's transaction; the caller writes the returned events.
pub async fn insert(
    tx: &mut PgConnection,
    task: &Task,
    job: &ParsedJob,
    parent: Option<(Uuid, DateTime<Utc>)>,
) -> Result<Inserted, ApiError> {
    let mut inserted = insert_many(tx, &[(task, job)], parent).await?;
    Ok(inserted.pop().expect("one result per job"))
}

/// [`insert`] for several tasks in one statement (a bulk creation), results in their order.
pub async fn insert_many(
    tx: &mut PgConnection,
    items: &[(&Task, &ParsedJob)],
    parent: Option<(Uuid, DateTime<Utc>)>,
) -> Result<Vec<Inserted>, ApiError> {
    struct Row {
        next_run_at: Option<DateTime<Utc>>,
        attempt: i32,
        first: Option<(Uuid, outbox::Pending)>,
    }
    let mut rows = Vec::with_capacity(items.len());
    for (task, job) in items {
        let next_run_at = job
            .cron
            .as_ref()
            .and_then(|(_, schedule)| schedule.upcoming(Utc).next());
        // The first dispatch is written with the job (its ids are known before), so a new job
        // costs one row here and its events.
        let first = match job.cron {
            Some(_) => None,
            None => {
                let at = job.run_at.filter(|at| *at > Utc::now());
                Some(dispatch_event(task, job, 1, at)?)
            }
        };
        rows.push(Row {
            next_run_at,
            attempt: i32::from(first.is_some()),
            first,
        });
    }
    let inserted: HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO jobs (task_id, owner_id, kind, payload, pool, run_at, cron, next_run_at,
                           parent_id, scheduled_for, max_attempts, backoff_base_ms,
                           backoff_max_ms, timeout_ms, unique_key, unique_lock, attempt,
                           dispatch_id, dispatch_event)
         SELECT task_id, owner_id, kind, payload, pool, run_at, cron, next_run_at, $9, $10,
                max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, unique_key, unique_key,
                attempt, dispatch_id, dispatch_event
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[],
                       $6::timestamptz[], $7::text[], $8::timestamptz[], $11::int4[], $12::int8[],
                       $13::int8[], $14::int8[], $15::text[], $16::int4[], $17::uuid[],
                       $18::uuid[])
             AS j(task_id, owner_id, kind, payload, pool, run_at, cron, next_run_at,
                  max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms, unique_key,
                  attempt, dispatch_id, dispatch_event)
         ON CONFLICT DO NOTHING
         RETURNING task_id",
    )
    .bind(items.iter().map(|(t, _)| t.id).collect::<Vec<_>>())
    .bind(items.iter().map(|(t, _)| t.owner_id).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|(_, j)| j.kind.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(_, j)| j.payload.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(_, j)| j.pool.clone())
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|(_, j)| j.run_at).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|(_, j)| j.cron.as_ref().map(|(text, _)| text.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.next_run_at).collect::<Vec<_>>())
    .bind(parent.map(|p| p.0))
    .bind(parent.map(|p| p.1))
    .bind(
        items
            .iter()
            .map(|(_, j)| j.max_attempts)
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(_, j)| j.backoff_base_ms)
            .collect::<Vec<_>>(),
    )
    .bind(
        items
            .iter()
            .map(|(_, j)| j.backoff_max_ms)
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|(_, j)| j.timeout_ms).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|(_, j)| j.unique_key.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.first.as_ref().map(|f| f.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.first.as_ref().map(|f| f.1.event.id))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    // Refused rows: a live job with the same key (maybe one earlier in this batch), or a cron
    // tick that has run already.
    let refused: Vec<(Uuid, String)> = items
        .iter()
        .filter(|(t, _)| !inserted.contains(&t.id))
        .filter_map(|(t, j)| Some((t.owner_id, j.unique_key.clone()?)))
        .collect();
    let existing: HashMap<(Uuid, String), Uuid> = if refused.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (Uuid, String, Uuid)>(
            "SELECT j.owner_id, j.unique_lock, j.task_id
               FROM jobs j JOIN unnest($1::uuid[], $2::text[]) AS r(owner_id, unique_lock)
                 ON j.owner_id = r.owner_id AND j.unique_lock = r.unique_lock",
        )
        .bind(refused.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(refused.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(owner, key, task)| ((owner, key), task))
        .collect()
    };
    let mut results = Vec::with_capacity(items.len());
    for ((task, job), row) in items.iter().zip(rows) {
        if !inserted.contains(&task.id) {
            let key = (task.owner_id, job.unique_key.clone().unwrap_or_default());
            results.push(match existing.get(&key) {
                Some(id) => Inserted::Duplicate(*id),
                None => {
                    return Err(ApiError::conflict(
                        "duplicate_run",
                        "this cron tick has run already",
                    ))
                }
            });
            continue;
        }
        let mut events = Vec::new();
        if let Some((_, pending)) = row.first {
            events.push(pending);
            events.push(assigned_event(task, &job.pool)?);
        }
        let view = JobView {
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            pool: job.pool.clone(),
            run_at: job.run_at,
            cron: job.cron.as_ref().map(|(text, _)| text.clone()),
            next_run_at: row.next_run_at,
            parent_id: parent.map(|p| p.0),
            scheduled_for: parent.map(|p| p.1),
            max_attempts: job.max_attempts,
            backoff_base_ms: job.backoff_base_ms,
            backoff_max_ms: job.backoff_max_ms,
            timeout_ms: job.timeout_ms,
            unique_key: job.unique_key.clone(),
            attempt: row.attempt,
            progress: None,
            result: None,
            last_error: None,
            started_at: None,
            finished_at: None,
        };
        results.push(Inserted::Created(Box::new(view), events));
    }
    Ok(results)
}

/// The dispatch of attempt `attempt` of `task`'s job (not before `at`), and its new id.
fn dispatch_event(
    task: &Task,
    job: &ParsedJob,
    attempt: i32,
    at: Option<DateTime<Utc>>,
) -> Result<(Uuid, outbox::Pending), sqlx::Error> {
    let dispatch_id = Uuid::now_v7();
    let message = JobDispatch {
        task_id: task.id,
        dispatch_id,
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        pool: job.pool.clone(),
        attempt,
        max_attempts: job.max_attempts,
        timeout_ms: job.timeout_ms,
        idempotency_key: task.id.to_string(),
        priority: task.priority.clone(),
    };
    let route = Route {
        routing_key: Some(format!("job.dispatch.{}", job.pool)),
        available_at: at,
        priority: Some(amqp_priority(&task.priority)),
    };
    Ok((
        dispatch_id,
        outbox::Pending::new(CloudEvent::new(SERVICE, message), route)?,
    ))
}

/// `task.assigned` for a job handed to `pool`.
fn assigned_event(task: &Task, pool: &str) -> Result<outbox::Pending, sqlx::Error> {
    let assigned = TaskAssigned {
        task_id: task.id,
        owner_id: task.owner_id,
        actor_id: Uuid::nil(),
        assignee_id: None,
        previous_assignee_id: None,
        title: task.title.clone(),
        pool: Some(pool.to_string()),
    };
    outbox::Pending::new(CloudEvent::new(SERVICE, assigned), Route::default())
}

/// AMQP priority of a task priority (the job queues have `x-max-priority` 9).
fn amqp_priority(priority: &str) -> u8 {
    match priority {
        "urgent" => 9,
        "high" => 7,
        "normal" => 4,
        _ => 1,
    }
}

/// Hands `task`'s job to its pool as attempt `attempt`, not before `at`: a new dispatch id and
/// an outbox row on `job.dispatch.<pool>`. `announce` also publishes `task.assigned`.
pub async fn dispatch(
    tx: &mut PgConnection,
    task: &Task,
    attempt: i32,
    at: Option<DateTime<Utc>>,
    announce: bool,
) -> Result<Uuid, sqlx::Error> {
    let (kind, payload, pool, max_attempts, timeout_ms): (String, Value, String, i32, i64) =
        sqlx::query_as(
            "SELECT kind, payload, pool, max_attempts, timeout_ms FROM jobs WHERE task_id = $1",
        )
        .bind(task.id)
        .fetch_one(&mut *tx)
        .await?;
    let job = ParsedJob {
        kind,
        payload,
        pool,
        run_at: None,
        cron: None,
        max_attempts,
        backoff_base_ms: 0,
        backoff_max_ms: 0,
        timeout_ms,
        unique_key: None,
    };
    let (dispatch_id, pending) = dispatch_event(task, &job, attempt, at)?;
    sqlx::query(
        "UPDATE jobs SET attempt = $2, dispatch_id = $3, dispatch_event = $4, lost_runs = 0,
                         current_run = NULL
          WHERE task_id = $1",
    )
    .bind(task.id)
    .bind(attempt)
    .bind(dispatch_id)
    .bind(pending.event.id)
    .execute(&mut *tx)
    .await?;
    let mut events = vec![pending];
    if announce {
        events.push(assigned_event(task, &job.pool)?);
    }
    outbox::enqueue_all(tx, events).await?;
    Ok(dispatch_id)
}

/// The delay before attempt `failed + 1`: base × 2^(failed−1), capped, ±25 % jitter.
pub fn backoff(base_ms: i64, max_ms: i64, failed: i32) -> Duration {
    let exponent = (failed.max(1) - 1).min(40) as u32;
    let raw = (base_ms as f64) * 2f64.powi(exponent as i32);
    let capped = raw.min(max_ms as f64);
    let jitter = rand::thread_rng().gen_range(0.75..=1.25);
    Duration::milliseconds((capped * jitter).round() as i64)
}

/// The task and the job fields report handling needs, locked.
#[derive(Debug, sqlx::FromRow)]
struct Locked {
    dispatch_id: Option<Uuid>,
    current_run: Option<Uuid>,
    attempt: i32,
    max_attempts: i32,
    backoff_base_ms: i64,
    backoff_max_ms: i64,
    kind: String,
    pool: String,
    lost_runs: i32,
}

async fn lock(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Option<(Task, Locked)>, sqlx::Error> {
    let task: Option<Task> = sqlx::query_as(&format!(
        "SELECT {} FROM tasks WHERE id = $1 FOR UPDATE",
        crate::tasks::COLUMNS
    ))
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(task) = task else { return Ok(None) };
    let job: Option<Locked> = sqlx::query_as(
        "SELECT dispatch_id, current_run, attempt, max_attempts, backoff_base_ms, backoff_max_ms,
                kind, pool, lost_runs
           FROM jobs WHERE task_id = $1",
    )
    .bind(task_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(job.map(|job| (task, job)))
}

/// Moves an automated task to `status` (no history entry: runs are recorded in
/// `job_attempts`); bumps the version so ETags change.
async fn set_status(
    conn: &mut PgConnection,
    task: &mut Task,
    status: &str,
) -> Result<(), sqlx::Error> {
    let (version, updated_at): (i32, DateTime<Utc>) = sqlx::query_as(
        "UPDATE tasks SET status = $2, version = version + 1, updated_at = now()
          WHERE id = $1 RETURNING version, updated_at",
    )
    .bind(task.id)
    .bind(status)
    .fetch_one(&mut *conn)
    .await?;
    task.status = status.to_string();
    task.version = version;
    task.updated_at = updated_at;
    Ok(())
}

/// Applies workers' reports (`job.started`, `job.progress`, `job.finished`) to tasks.
pub struct JobReports {
    pub pool: PgPool,
    pub cache: cache::ListCache,
    pub config: JobsConfig,
}

fn reject(err: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Reject(err.into())
}

impl JobReports {
    /// Applies one report inside `tx` (once: duplicates are recognised and skipped). Returns the
    /// task if its status changed.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &CloudEvent,
    ) -> Result<Option<Task>, HandlerError> {
        if !idempotency::first_time(tx, CONSUMER, event.id).await? {
            return Ok(None);
        }
        Ok(match event.event_type.as_str() {
            JobStarted::TYPE => {
                on_started(tx, event.decode().map_err(reject)?, &self.config).await?
            }
            JobProgress::TYPE => on_progress(tx, event.decode().map_err(reject)?).await?,
            JobFinished::TYPE => {
                on_finished(tx, event.decode().map_err(reject)?, &self.config).await?
            }
            other => {
                return Err(HandlerError::Reject(anyhow::anyhow!(
                    "not a job report: {other}"
                )))
            }
        })
    }

    /// Commits `tx`, then invalidates the cached lists that show the changed tasks.
    async fn finish(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        touched: Vec<Task>,
    ) -> Result<(), HandlerError> {
        let touched: Vec<&Task> = touched.iter().collect();
        let audience = cache::audience_many(&mut tx, &touched).await?;
        tx.commit().await?;
        self.cache.invalidate(&audience).await;
        Ok(())
    }
}

impl Handler for JobReports {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(message)).await
    }
}

impl BatchHandler for JobReports {
    /// A batch in one transaction. Successes, the bulk of a busy queue, are applied together in
    /// a few set-based statements; every other report goes through [`JobReports::apply`] in
    /// arrival order. The order between the two does not matter: each report is applied on its
    /// own merits (stale dispatches, finished tasks and late starts are recognised).
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let mut touched = Vec::new();
        let mut successes = Vec::new();
        // A worker's `job.finished.batch` counts as its reports, each once.
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            events.extend(message.event.expand_reports().map_err(reject)?);
        }
        for event in &events {
            if event.event_type == JobFinished::TYPE {
                if let Ok(report) = event.decode::<JobFinished>() {
                    if report.outcome == JobOutcome::Succeeded {
                        successes.push((report, event.traceparent.clone()));
                        continue;
                    }
                }
            }
            // The events a report causes continue its trace.
            let applied =
                shared::trace::scope(event.traceparent.clone(), self.apply(&mut tx, event)).await;
            touched.extend(applied?);
        }
        touched.extend(complete_many(&mut tx, successes).await?);
        self.finish(tx, touched).await
    }
}

/// Applies successful `job.finished` reports together: records their runs, completes their
/// tasks (only a live task whose current dispatch it is) and announces `task.completed`.
/// Returns the completed tasks.
///
/// Idempotent without a processed-events record: a run is recorded once (its id is unique and
/// a finished run is not overwritten), and a task completes only from a live status, so a
/// duplicate report changes nothing and announces nothing.
async fn complete_many(
    tx: &mut PgConnection,
    reports: Vec<(JobFinished, Option<String>)>,
) -> Result<Vec<Task>, sqlx::Error> {
    if reports.is_empty() {
        return Ok(Vec::new());
    }
    let traces: HashMap<Uuid, Option<String>> = reports
        .iter()
        .map(|(r, traceparent)| (r.task_id, traceparent.clone()))
        .collect();
    let reports: Vec<JobFinished> = reports.into_iter().map(|(r, _)| r).collect();
    let column = |f: fn(&JobFinished) -> Uuid| reports.iter().map(f).collect::<Vec<Uuid>>();
    #[derive(sqlx::FromRow)]
    struct Done {
        #[sqlx(flatten)]
        task: Task,
        job_kind: String,
    }
    let done: Vec<Done> = sqlx::query_as(&format!(
        "WITH r AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int4[],
                                 $6::timestamptz[], $7::timestamptz[], $8::jsonb[])
                AS r(task_id, dispatch_id, run_id, worker_id, attempt, started_at, ended_at, result)
         ), runs AS (
            INSERT INTO job_attempts (run_id, task_id, dispatch_id, attempt, worker_id, started_at,
                                      ended_at, outcome)
            SELECT run_id, task_id, dispatch_id, attempt, worker_id, started_at, ended_at,
                   'succeeded'
              FROM r WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.task_id)
            ON CONFLICT (run_id) DO UPDATE
               SET ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome, error = NULL
             WHERE job_attempts.outcome IN ('running', 'lost')
         ), lost AS (
            -- Another run of the same dispatch still open is one whose worker died: a quick
            -- rerun reports no start, so it is marked here, as a reported start would.
            UPDATE job_attempts a
               SET outcome = 'lost', ended_at = r.started_at,
                   error = 'the worker stopped before finishing; the broker handed the job to another run'
              FROM r
             WHERE a.task_id = r.task_id AND a.dispatch_id = r.dispatch_id
               AND a.run_id <> r.run_id AND a.outcome = 'running'
         ), done AS (
            UPDATE tasks t SET status = 'completed', version = t.version + 1, updated_at = now()
              FROM r, jobs j
             WHERE t.id = r.task_id AND j.task_id = r.task_id AND j.dispatch_id = r.dispatch_id
               AND t.status IN ('pending', 'scheduled', 'queued', 'running', 'retrying')
            RETURNING t.*, j.kind AS job_kind, r.result AS run_result,
                      r.started_at AS run_started_at, r.ended_at AS run_ended_at
         ), finished AS (
            UPDATE jobs j
               SET result = done.run_result, finished_at = done.run_ended_at, last_error = NULL,
                   unique_lock = NULL, started_at = COALESCE(j.started_at, done.run_started_at)
              FROM done WHERE j.task_id = done.id
         )
         SELECT {}, job_kind FROM done",
        crate::tasks::COLUMNS
    ))
    .bind(column(|r| r.task_id))
    .bind(column(|r| r.dispatch_id))
    .bind(column(|r| r.run_id))
    .bind(
        reports
            .iter()
            .map(|r| r.worker_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(reports.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(reports.iter().map(|r| r.ended_at).collect::<Vec<_>>())
    .bind(
        reports
            .iter()
            .map(|r| r.result.clone().unwrap_or(Value::Null))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let events = done
        .iter()
        .map(|Done { task, job_kind }| {
            let mut event = CloudEvent::new(
                SERVICE,
                TaskCompleted {
                    task_id: task.id,
                    owner_id: task.owner_id,
                    actor_id: Uuid::nil(),
                    assignee_id: None,
                    title: task.title.clone(),
                    job_kind: Some(job_kind.clone()),
                },
            );
            if let Some(traceparent) = traces.get(&task.id).cloned().flatten() {
                event.traceparent = Some(traceparent);
            }
            event
        })
        .collect();
    outbox::enqueue_many(tx, events).await?;
    Ok(done.into_iter().map(|d| d.task).collect())
}

/// Records the run; marks other open runs of the dispatch lost (their worker died and the broker
/// redelivered); the task becomes `running`. Returns the task if its status changed.
async fn on_started(
    tx: &mut PgConnection,
    report: JobStarted,
    config: &JobsConfig,
) -> Result<Option<Task>, sqlx::Error> {
    let Some((mut task, job)) = lock(tx, report.task_id).await? else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO job_attempts (run_id, task_id, dispatch_id, attempt, worker_id, started_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (run_id) DO UPDATE
            SET started_at = COALESCE(job_attempts.started_at, EXCLUDED.started_at)",
    )
    .bind(report.run_id)
    .bind(report.task_id)
    .bind(report.dispatch_id)
    .bind(report.attempt)
    .bind(&report.worker_id)
    .bind(report.started_at)
    .execute(&mut *tx)
    .await?;
    if job.dispatch_id != Some(report.dispatch_id) {
        return Ok(None);
    }
    let lost = sqlx::query(
        "UPDATE job_attempts
            SET outcome = 'lost', ended_at = $3,
                error = 'the worker stopped before finishing; the broker handed the job to another run'
          WHERE task_id = $4 AND dispatch_id = $1 AND run_id <> $2 AND outcome = 'running'",
    )
    .bind(report.dispatch_id)
    .bind(report.run_id)
    .bind(report.started_at)
    .bind(report.task_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE jobs SET current_run = $2, lost_runs = lost_runs + $3,
                         started_at = COALESCE(started_at, $4), progress = NULL
          WHERE task_id = $1",
    )
    .bind(task.id)
    .bind(report.run_id)
    .bind(lost as i32)
    .bind(report.started_at)
    .execute(&mut *tx)
    .await?;
    if lost > 0 {
        tracing::warn!(task_id = %task.id, lost, previous_lost = job.lost_runs, "a run of this job was lost with its worker");
        let lost_runs = job.lost_runs + lost as i32;
        if lost_runs >= config.max_lost_runs as i32 && LIVE.contains(&task.status.as_str()) {
            // Its workers keep dying while running it: most likely the job kills them. Stop
            // the current run and dead-letter it rather than rerun it without end.
            let error = format!(
                "its runs were lost with their workers {lost_runs} times; it may be what stops them"
            );
            bury(tx, &mut task, &job, &error).await?;
            outbox::enqueue(tx, CloudEvent::new(SERVICE, JobCancel { task_id: task.id })).await?;
            return Ok(Some(task));
        }
    }
    if matches!(
        task.status.as_str(),
        "pending" | "scheduled" | "queued" | "retrying"
    ) {
        set_status(tx, &mut task, "running").await?;
        return Ok(Some(task));
    }
    Ok(None)
}

async fn on_progress(
    tx: &mut PgConnection,
    report: JobProgress,
) -> Result<Option<Task>, sqlx::Error> {
    let progress = serde_json::json!({ "percent": report.percent, "message": report.message });
    sqlx::query(
        "UPDATE jobs SET progress = $3, progress_seq = $4
          WHERE task_id = $1 AND dispatch_id = $2 AND current_run IS NOT DISTINCT FROM $5
            AND progress_seq < $4",
    )
    .bind(report.task_id)
    .bind(report.dispatch_id)
    .bind(&progress)
    .bind(report.seq)
    .bind(report.run_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE job_attempts SET progress = $2 WHERE run_id = $1 AND ended_at IS NULL")
        .bind(report.run_id)
        .bind(&progress)
        .execute(&mut *tx)
        .await?;
    Ok(None)
}

/// Records how the run ended and moves the job on: completed, retrying (a new dispatch after
/// the backoff), dead (the pool's dead-letter queue), cancelled, or queued again (handed back).
async fn on_finished(
    tx: &mut PgConnection,
    report: JobFinished,
    config: &JobsConfig,
) -> Result<Option<Task>, sqlx::Error> {
    let Some((mut task, job)) = lock(tx, report.task_id).await? else {
        return Ok(None);
    };
    let error: Option<String> = report
        .error
        .as_ref()
        .map(|e| e.chars().take(4000).collect());
    // A dispatch skipped because its task was cancelled never ran: no attempt to record.
    let skipped = report.outcome == JobOutcome::Cancelled;
    sqlx::query(
        "INSERT INTO job_attempts (run_id, task_id, dispatch_id, attempt, worker_id, started_at,
                                   ended_at, outcome, error)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
          WHERE NOT $10 OR EXISTS (SELECT 1 FROM job_attempts WHERE run_id = $1)
         ON CONFLICT (run_id) DO UPDATE
            SET ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome, error = EXCLUDED.error
          WHERE job_attempts.outcome IN ('running', 'lost')",
    )
    .bind(report.run_id)
    .bind(report.task_id)
    .bind(report.dispatch_id)
    .bind(report.attempt)
    .bind(&report.worker_id)
    .bind(report.started_at)
    .bind(report.ended_at)
    .bind(report.outcome.as_str())
    .bind(&error)
    .bind(skipped)
    .execute(&mut *tx)
    .await?;
    let current = job.dispatch_id == Some(report.dispatch_id);
    let live = LIVE.contains(&task.status.as_str());
    if !current || !live {
        return Ok(None);
    }
    // Another run took over this dispatch (this one was presumed lost): only a success still
    // counts; a failure of the old run must not retry what the new run is doing.
    let this_run = job.current_run.is_none() || job.current_run == Some(report.run_id);
    match report.outcome {
        JobOutcome::Succeeded => {
            sqlx::query(
                "UPDATE jobs SET result = $2, finished_at = $3, last_error = NULL,
                                 unique_lock = NULL, started_at = COALESCE(started_at, $4)
                  WHERE task_id = $1",
            )
            .bind(task.id)
            .bind(&report.result)
            .bind(report.ended_at)
            .bind(report.started_at)
            .execute(&mut *tx)
            .await?;
            set_status(tx, &mut task, "completed").await?;
            let completed = TaskCompleted {
                task_id: task.id,
                owner_id: task.owner_id,
                actor_id: Uuid::nil(),
                assignee_id: None,
                title: task.title.clone(),
                job_kind: Some(job.kind.clone()),
            };
            outbox::enqueue(tx, CloudEvent::new(SERVICE, completed)).await?;
        }
        JobOutcome::Interrupted if this_run => {
            // The worker shut down and requeued the dispatch: it runs again, same attempt.
            sqlx::query("UPDATE jobs SET current_run = NULL WHERE task_id = $1")
                .bind(task.id)
                .execute(&mut *tx)
                .await?;
            set_status(tx, &mut task, "queued").await?;
        }
        JobOutcome::Cancelled if this_run => {
            sqlx::query(
                "UPDATE jobs SET finished_at = $2, unique_lock = NULL, current_run = NULL
                  WHERE task_id = $1",
            )
            .bind(task.id)
            .bind(report.ended_at)
            .execute(&mut *tx)
            .await?;
            set_status(tx, &mut task, "cancelled").await?;
        }
        JobOutcome::Failed | JobOutcome::TimedOut if this_run => {
            let error = error.unwrap_or_else(|| report.outcome.as_str().to_string());
            fail(tx, &mut task, &job, &error, report.retryable, config).await?;
        }
        _ => return Ok(None),
    }
    Ok(Some(task))
}

/// A failed attempt: retry after the backoff, or dead-letter when attempts are used up (or
/// retrying cannot help).
async fn fail(
    tx: &mut PgConnection,
    task: &mut Task,
    job: &Locked,
    error: &str,
    retryable: bool,
    _config: &JobsConfig,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE jobs SET last_error = $2, current_run = NULL WHERE task_id = $1")
        .bind(task.id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
    if retryable && job.attempt < job.max_attempts {
        let retry_at = Utc::now() + backoff(job.backoff_base_ms, job.backoff_max_ms, job.attempt);
        set_status(tx, task, "retrying").await?;
        dispatch(tx, task, job.attempt + 1, Some(retry_at), false).await?;
        let failed = TaskFailed {
            task_id: task.id,
            owner_id: task.owner_id,
            title: task.title.clone(),
            kind: job.kind.clone(),
            pool: job.pool.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            error: error.to_string(),
            retry_at: Some(retry_at),
        };
        outbox::enqueue(tx, CloudEvent::new(SERVICE, failed)).await?;
        return Ok(());
    }
    bury(tx, task, job, error).await
}

/// The job is dead: the task says so, `task.dead` is published, and a copy goes to the pool's
/// dead-letter queue (`<ns>.jobs.<pool>.dlq`) for the console and for replay.
async fn bury(
    tx: &mut PgConnection,
    task: &mut Task,
    job: &Locked,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET finished_at = now(), unique_lock = NULL, dead_purged_at = NULL,
                         last_error = $2
          WHERE task_id = $1",
    )
    .bind(task.id)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    set_status(tx, task, "dead").await?;
    let dead = TaskDead {
        task_id: task.id,
        owner_id: task.owner_id,
        title: task.title.clone(),
        kind: job.kind.clone(),
        pool: job.pool.clone(),
        attempts: job.attempt,
        error: error.to_string(),
    };
    let route = Route {
        routing_key: Some(format!("job.dead.{}", job.pool)),
        ..Route::default()
    };
    outbox::enqueue_routed(tx, CloudEvent::new(SERVICE, dead.clone()), route).await?;
    outbox::enqueue(tx, CloudEvent::new(SERVICE, dead)).await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Cancelled: a queued job never starts, a running one is told to stop; a cron template stops ticking", body = Task),
        (status = 403, description = "Visible but not editable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 409, description = "Already finished", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, task_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let task = crate::operations::editable_job(&mut tx, &identity, &id, "cancel it").await?;
    let is_job: Option<Option<Uuid>> =
        sqlx::query_scalar("SELECT dispatch_event FROM jobs WHERE task_id = $1")
            .bind(task.id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(dispatch_event) = is_job else {
        // A person's task: the ordinary state machine.
        crate::status::check(&task.status, "cancelled")?;
        let mut after = task.clone();
        after.status = "cancelled".into();
        let changes = crate::tasks::status_change(&task, &after);
        let saved = crate::tasks::save(&mut tx, &after, identity.user_id, changes).await?;
        let audience = cache::audience(&mut tx, &saved).await?;
        tx.commit().await?;
        state.cache.invalidate(&audience).await;
        return Ok(crate::tasks::with_etag(StatusCode::OK, saved));
    };
    if !LIVE.contains(&task.status.as_str()) {
        return Err(ApiError::conflict(
            "already_finished",
            format!("the job is {} already", task.status),
        ));
    }
    let saved = crate::stopping::stop(
        &mut tx,
        &state.cache,
        &task,
        dispatch_event,
        identity.user_id,
    )
    .await?;
    let audience = cache::audience(&mut tx, &saved).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    Ok(crate::tasks::with_etag(StatusCode::OK, saved))
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempts {
    pub items: Vec<Attempt>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/attempts", tag = "jobs", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Every run of the task's job, oldest first", body = Attempts),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn attempts(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Attempts>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let task = crate::tasks::visible_task(&mut conn, &identity, &id).await?;
    let items = sqlx::query_as(
        "SELECT run_id, dispatch_id, attempt, worker_id, started_at, ended_at, outcome, error,
                progress
           FROM job_attempts WHERE task_id = $1
          ORDER BY started_at NULLS LAST, ended_at NULLS LAST, run_id",
    )
    .bind(task.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(Attempts { items }))
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadJobs {
    pub items: Vec<DeadJob>,
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    pub pool: Option<String>,
    /// At most this many, newest first (1 to 1000, default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/admin/jobs/dead", tag = "jobs", security(("bearer" = [])), params(DeadQuery),
    responses((status = 200, description = "Dead jobs not purged, newest first", body = DeadJobs),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn dead_list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<DeadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadJobs>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let limit = i64::from(query.limit.unwrap_or(100).clamp(1, 1000));
    let items = sqlx::query_as(
        "SELECT t.id AS task_id, t.owner_id, t.title, j.kind, j.pool, j.attempt, j.max_attempts,
                j.last_error, j.finished_at AS died_at
           FROM tasks t JOIN jobs j ON j.task_id = t.id
          WHERE t.status = 'dead' AND j.dead_purged_at IS NULL
            AND ($1::text IS NULL OR j.pool = $1)
          ORDER BY j.finished_at DESC NULLS LAST LIMIT $2",
    )
    .bind(&query.pool)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(DeadJobs { items }))
}

/// How many jobs an admin call changed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Affected {
    pub count: u64,
}

fn check_selection(selection: &DeadSelection) -> Result<(), ApiError> {
    if selection
        .task_ids
        .as_ref()
        .is_some_and(|ids| ids.len() > 1000)
    {
        return Err(ApiError::unprocessable(
            "too_many",
            "at most 1000 task_ids per call",
        ));
    }
    Ok(())
}

/// Locks the dead, unpurged jobs `selection` names (at most 1000).
async fn select_dead(
    conn: &mut PgConnection,
    selection: &DeadSelection,
) -> Result<Vec<Task>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM tasks t
          WHERE t.status = 'dead'
            AND EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = t.id AND j.dead_purged_at IS NULL
                          AND ($1::text IS NULL OR j.pool = $1))
            AND ($2::uuid[] IS NULL OR t.id = ANY($2))
          ORDER BY t.updated_at LIMIT 1000 FOR UPDATE",
        crate::tasks::COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind(&selection.pool)
    .bind(&selection.task_ids)
    .fetch_all(conn)
    .await
}

#[utoipa::path(post, path = "/api/v1/admin/jobs/dead/replay", tag = "jobs", security(("bearer" = [])), request_body = DeadSelection,
    responses((status = 200, description = "Replayed: each job is queued again with a fresh budget of attempts", body = Affected),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "More than 1000 task_ids", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn dead_replay(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(selection): JsonBody<DeadSelection>,
) -> Result<Json<Affected>, ApiError> {
    identity.require_admin()?;
    check_selection(&selection)?;
    let mut tx = state.pool.begin().await?;
    let tasks = select_dead(&mut tx, &selection).await?;
    let mut pools = HashSet::new();
    let mut audience = Vec::new();
    for mut task in tasks.clone() {
        let pool: String = sqlx::query_scalar(
            "UPDATE jobs SET finished_at = NULL, last_error = NULL, result = NULL,
                    unique_lock = unique_key, progress = NULL
              WHERE task_id = $1 RETURNING pool",
        )
        .bind(task.id)
        .fetch_one(&mut *tx)
        .await?;
        state.pools.ensure(&pool).await?;
        pools.insert(pool);
        set_status(&mut tx, &mut task, "queued").await?;
        dispatch(&mut tx, &task, 1, None, true).await?;
        audience.extend(cache::audience(&mut tx, &task).await?);
    }
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    for pool in pools {
        prune_dead_letters(&state, &pool).await;
    }
    tracing::info!(count = tasks.len(), "replayed dead jobs");
    Ok(Json(Affected {
        count: tasks.len() as u64,
    }))
}

#[utoipa::path(delete, path = "/api/v1/admin/jobs/dead", tag = "jobs", security(("bearer" = [])), request_body = DeadSelection,
    responses((status = 200, description = "Purged from the dead list and the dead-letter queue (the tasks stay, dead)", body = Affected),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 422, description = "More than 1000 task_ids", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn dead_purge(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(selection): JsonBody<DeadSelection>,
) -> Result<Json<Affected>, ApiError> {
    identity.require_admin()?;
    check_selection(&selection)?;
    let mut tx = state.pool.begin().await?;
    let tasks = select_dead(&mut tx, &selection).await?;
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let pools: Vec<String> = sqlx::query_scalar(
        "UPDATE jobs SET dead_purged_at = now() WHERE task_id = ANY($1) RETURNING pool",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let pools: HashSet<String> = pools.into_iter().collect();
    for pool in pools {
        prune_dead_letters(&state, &pool).await;
    }
    Ok(Json(Affected {
        count: ids.len() as u64,
    }))
}

/// Removes from `pool`'s dead-letter queue the messages of jobs that are no longer on the dead
/// list (replayed or purged); the others go back in their order. Best effort: the database is
/// the record, the queue its mirror for the console.
async fn prune_dead_letters(state: &AppState, pool: &str) {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let topology = PoolTopology::new(state.pools.broker(), pool);
    let result: anyhow::Result<usize> = async {
        let channel = state.pools.broker().channel().await?;
        let mut seen = Vec::new();
        // Unacked gets stay with this channel; closing it returns the kept ones to the queue.
        while seen.len() < 100_000 {
            let Some(message) = channel
                .basic_get(
                    &topology.dead_letter_queue,
                    BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            let task_id = serde_json::from_slice::<CloudEvent>(&message.delivery.data)
                .ok()
                .and_then(|e| e.subject)
                .and_then(|s| Uuid::parse_str(&s).ok());
            seen.push((message.delivery.delivery_tag, task_id));
        }
        let ids: Vec<Uuid> = seen.iter().filter_map(|(_, id)| *id).collect();
        let still_dead: HashSet<Uuid> = sqlx::query_scalar(
            "SELECT t.id FROM tasks t JOIN jobs j ON j.task_id = t.id
              WHERE t.id = ANY($1) AND t.status = 'dead' AND j.dead_purged_at IS NULL",
        )
        .bind(&ids)
        .fetch_all(&state.pool)
        .await?
        .into_iter()
        .collect();
        let mut removed = 0;
        for (tag, id) in &seen {
            if !id.is_some_and(|id| still_dead.contains(&id)) {
                channel.basic_ack(*tag, BasicAckOptions::default()).await?;
                removed += 1;
            }
        }
        channel.close(200, "pruned").await?;
        Ok(removed)
    }
    .await;
    match result {
        Ok(removed) => tracing::info!(%pool, removed, "pruned the dead-letter queue"),
        Err(err) => {
            tracing::warn!(%pool, error = format!("{err:#}"), "cannot prune the dead-letter queue")
        }
    }
}

/// A worker process as its heartbeat describes it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    /// `alive`, `dead` (no heartbeat for `jobs.worker_dead_after_secs`) or `stopped` (shut
    /// down cleanly).
    pub state: String,
    #[schema(value_type = Object)]
    pub details: HashMap<String, Value>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workers {
    pub items: Vec<WorkerInfo>,
}

#[utoipa::path(get, path = "/api/v1/workers", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Workers that reported in the last hour, with alive/dead/stopped", body = Workers),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 503, description = "Redis is down", body = ProblemBody)))]
pub async fn workers(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Workers>, ApiError> {
    identity.require_admin()?;
    let mut redis = state.cache.redis.clone();
    let prefix = format!("{}workers:", state.config.redis.key_prefix);
    let unavailable = |err: redis::RedisError| {
        tracing::warn!(error = %err, "cannot list workers");
        ApiError::unavailable("redis")
    };
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 || keys.len() > 10_000 {
            break;
        }
    }
    let dead_after = Duration::seconds(state.config.jobs.worker_dead_after_secs as i64);
    let mut items = Vec::new();
    for key in keys {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        if fields.is_empty() {
            continue;
        }
        let seen = fields
            .get("seen_at")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc));
        let state = if fields.contains_key("stopped_at") {
            "stopped"
        } else if seen.is_some_and(|seen| Utc::now() - seen <= dead_after) {
            "alive"
        } else {
            "dead"
        };
        let details = fields
            .into_iter()
            .map(|(k, v)| {
                let value = v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(v));
                (k, value)
            })
            .collect();
        items.push(WorkerInfo {
            id: key.trim_start_matches(&prefix).to_string(),
            state: state.into(),
            details,
        });
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(Workers { items }))
}

/// Creates the due runs of cron templates: one task per tick, exactly once however many
/// task-svc replicas run this (the template row is locked with `SKIP LOCKED`, and a unique index
/// on `(parent_id, scheduled_for)` refuses a second run of a tick). A tick missed while nothing
/// ran (the platform was down) runs once, then the schedule continues from now. A tick whose
/// owner already has `max_live` jobs waiting or running is skipped (`quotas::skips_tick`).
pub async fn cron_round(
    pool: &PgPool,
    cache: &cache::ListCache,
    max_live: u32,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    // The templates are found through their own index and only then their task's status is
    // read: as a join, the planner started from the tasks that are 'scheduled' (every job
    // waiting for its run_at is), a visit per waiting job every round.
    let due: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT j.task_id, j.cron, j.next_run_at FROM jobs j
          WHERE j.cron IS NOT NULL AND j.next_run_at <= now()
            AND (SELECT t.status FROM tasks t WHERE t.id = j.task_id) = 'scheduled'
          ORDER BY j.next_run_at LIMIT 100
            FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut created = Vec::new();
    for (template_id, expression, tick) in due {
        let template: Task = sqlx::query_as(&format!(
            "SELECT {} FROM tasks WHERE id = $1",
            crate::tasks::COLUMNS
        ))
        .bind(template_id)
        .fetch_one(&mut *tx)
        .await?;
        if crate::quotas::skips_tick(&mut tx, template.owner_id, max_live).await? {
            advance_cron(&mut tx, template_id, &expression, tick).await?;
            continue;
        }
        let job: (String, Value, String, i32, i64, i64, i64) = sqlx::query_as(
            "SELECT kind, payload, pool, max_attempts, backoff_base_ms, backoff_max_ms, timeout_ms
               FROM jobs WHERE task_id = $1",
        )
        .bind(template_id)
        .fetch_one(&mut *tx)
        .await?;
        let run: Task = sqlx::query_as(&format!(
            "INSERT INTO tasks (id, owner_id, title, description, status, priority,
                                priority_source, channel_id, tags)
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8) RETURNING {}",
            crate::tasks::COLUMNS
        ))
        .bind(Uuid::now_v7())
        .bind(template.owner_id)
        .bind(&template.title)
        .bind(&template.description)
        .bind(&template.priority)
        .bind(&template.priority_source)
        .bind(template.channel_id)
        .bind(&template.tags)
        .fetch_one(&mut *tx)
        .await?;
        let parsed = ParsedJob {
            kind: job.0.clone(),
            payload: job.1,
            pool: job.2,
            run_at: None,
            cron: None,
            max_attempts: job.3,
            backoff_base_ms: job.4,
            backoff_max_ms: job.5,
            timeout_ms: job.6,
            unique_key: None,
        };
        match insert(&mut tx, &run, &parsed, Some((template_id, tick))).await {
            Ok(Inserted::Created(_, mut events)) => {
                let created_event = shared::events::TaskCreated {
                    task_id: run.id,
                    owner_id: run.owner_id,
                    title: run.title.clone(),
                    status: run.status.clone(),
                    priority: run.priority.clone(),
                    assignee_id: None,
                    channel_id: run.channel_id,
                    due_at: None,
                    job_kind: Some(job.0),
                };
                events.insert(
                    0,
                    outbox::Pending::new(
                        CloudEvent::new(SERVICE, created_event),
                        Route::default(),
                    )?,
                );
                outbox::enqueue_all(&mut tx, events).await?;
                created.push(run);
            }
            Ok(Inserted::Duplicate(_)) | Err(_) => {
                sqlx::query("DELETE FROM tasks WHERE id = $1")
                    .bind(run.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        advance_cron(&mut tx, template_id, &expression, tick).await?;
    }
    // The new runs are in their owners' (and channels') lists from the commit on, cached first
    // pages included.
    let audience = cache::audience_many(&mut tx, &created.iter().collect::<Vec<_>>()).await?;
    tx.commit().await?;
    cache.invalidate(&audience).await;
    Ok(created.len())
}

/// Moves a template's next tick past `tick` (and past now).
async fn advance_cron(
    tx: &mut PgConnection,
    template_id: Uuid,
    expression: &str,
    tick: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let next = parse_cron(expression)
        .ok()
        .and_then(|schedule| schedule.after(&tick.max(Utc::now())).next());
    sqlx::query("UPDATE jobs SET next_run_at = $2 WHERE task_id = $1")
        .bind(template_id)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Runs [`cron_round`] every `jobs.cron_poll_ms` until `shutdown`.
pub async fn run_cron(
    pool: PgPool,
    cache: cache::ListCache,
    config: JobsConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let every = std::time::Duration::from_millis(config.cron_poll_ms.max(50));
    while !shutdown.is_cancelled() {
        match cron_round(&pool, &cache, config.member_max_live_jobs).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(runs = n, "cron runs created"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "cron round failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
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
        assert_eq!(ok.initial_status(), "queued");
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
            "scheduled"
        );
    }
}
