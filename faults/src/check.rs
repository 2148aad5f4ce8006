//! The history checker: what the clients saw against what exists (tasks in task-svc's
//! database) and what happened (calls at the receiver, and the `task.assigned` notification
//! notify-svc writes for each person's task).
//!
//! - **lost**: an ok request whose task does not exist, an ok job whose receiver was never
//!   called, or an ok person's task without its notification.
//! - **duplicated**: a job whose receiver got more calls than its runs explain. A job is run
//!   again, with the same `Idempotency-Key`, when a run's outcome never reached task-svc (its
//!   worker died: the run is `lost` or `interrupted`, or, for a run killed within its first
//!   `workers.report_started_after_ms`, the two calls lie on either side of a worker's
//!   `kill -9`) or the run failed or timed out; such calls are *reruns*, which the key makes
//!   harmless. Any other repeated call is a duplicate, and so is a call under a second key, and
//!   so is a second notification for one task.
//! - **stuck**: an ok job whose receiver was called but which never reached `completed`: the
//!   effect happened, the task does not say so.
//! - **unexpected**: a task or a call for a request the client was told had failed, or for a
//!   request the client never made.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::receiver::Receiver;
use crate::workload::{title_prefix, Outcome, Record};

/// One fault's figures.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Unknown requests whose task turned out to exist.
    pub unknown_done: usize,
    /// Distinct effects: jobs whose receiver was called, person's tasks notified.
    pub effects: usize,
    pub reruns: usize,
    pub lost: usize,
    /// Ok jobs whose receiver was called but which never reached `completed`.
    pub stuck: usize,
    pub duplicated: usize,
    pub unexpected: usize,
    /// From the fault's end to the first ok answer to a request sent after it.
    pub api_recovery: Option<Duration>,
    /// From the fault's end until every job accepted before it had its effect.
    pub backlog_recovery: Option<Duration>,
    /// Whether every job settled before the deadline.
    pub settled: bool,
    /// Details of each counted problem, for the log.
    pub notes: Vec<String>,
}

struct DbTask {
    id: Uuid,
    status: String,
    job: bool,
}

async fn tasks(db: &PgPool, tag: &str) -> anyhow::Result<HashMap<Uuid, DbTask>> {
    let prefix = title_prefix(tag);
    let rows: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT t.id, t.title, t.status, j.task_id IS NOT NULL
           FROM tasks t LEFT JOIN jobs j ON j.task_id = t.id
          WHERE starts_with(t.title, $1)",
    )
    .bind(&prefix)
    .fetch_all(db)
    .await?;
    let mut out = HashMap::new();
    for (id, title, status, job) in rows {
        let req = title[prefix.len()..]
            .parse::<Uuid>()
            .unwrap_or_else(|_| Uuid::nil());
        out.insert(req, DbTask { id, status, job });
    }
    Ok(out)
}

/// Runs that explain one more call each (by task).
async fn rerun_allowance(db: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, usize>> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT task_id, count(*) FROM job_attempts
          WHERE task_id = ANY($1) AND outcome IN ('lost', 'interrupted', 'failed', 'timed_out')
          GROUP BY task_id",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(id, n)| (id, n as usize)).collect())
}

/// `task.assigned` notifications per task (to the peer it is assigned to) (person's tasks only get one).
async fn notifications(notify: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, usize>> {
    let subjects: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT subject, count(*) FROM notifications
          WHERE kind = 'task.assigned' AND subject = ANY($1) GROUP BY subject",
    )
    .bind(&subjects)
    .fetch_all(notify)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| Some((s.parse().ok()?, n as usize)))
        .collect())
}

const TERMINAL: [&str; 3] = ["completed", "dead", "cancelled"];

/// Waits (until `deadline`) for every job of fault `tag` to finish and for the receiver to go
/// quiet; returns whether everything settled.
pub async fn settle(
    db: &PgPool,
    notify: &PgPool,
    receiver: &Receiver,
    tag: &str,
    records: &[Record],
    deadline: Duration,
) -> bool {
    let started = Instant::now();
    let ok: Vec<Uuid> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Ok(_)))
        .map(|r| r.req)
        .collect();
    loop {
        if let Ok(tasks) = tasks(db, tag).await {
            let all_ok_exist = ok.iter().all(|req| tasks.contains_key(req));
            let jobs_done = tasks
                .values()
                .filter(|t| t.job)
                .all(|t| TERMINAL.contains(&t.status.as_str()));
            let people: Vec<Uuid> = tasks.values().filter(|t| !t.job).map(|t| t.id).collect();
            let all_notified = match notifications(notify, &people).await {
                Ok(notes) => people.iter().all(|id| notes.contains_key(id)),
                Err(_) => false,
            };
            if all_ok_exist && jobs_done && all_notified {
                break;
            }
        }
        if started.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Late calls (a re-run of a finished job) come after its completion: wait until the
    // receiver has been quiet for a second, for at most ten.
    let quiet_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < quiet_deadline {
        if receiver
            .last_call()
            .is_none_or(|at| at.elapsed() > Duration::from_secs(1))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Counts lost, duplicated and unexpected for fault `tag`, whose fault ended at `healed`.
pub async fn check(
    db: &PgPool,
    notify: &PgPool,
    receiver: &Receiver,
    tag: &str,
    records: &[Record],
    healed: Instant,
    worker_deaths: &[Instant],
) -> anyhow::Result<Figures> {
    let tasks = tasks(db, tag).await?;
    let ids: Vec<Uuid> = tasks.values().map(|t| t.id).collect();
    let allowance = rerun_allowance(db, &ids).await?;
    let notes = notifications(notify, &ids).await?;
    let mut f = Figures::default();
    let mine: HashSet<Uuid> = records.iter().map(|r| r.req).collect();
    let mut backlog = Duration::ZERO;
    for r in records {
        let calls = receiver.calls(&r.req);
        let task = tasks.get(&r.req);
        match &r.outcome {
            Outcome::Ok(id) => {
                f.ok += 1;
                if task.is_none_or(|t| t.id != *id) {
                    f.lost += 1;
                    f.notes.push(format!(
                        "lost: task {id} (request {}) does not exist",
                        r.req
                    ));
                } else if r.job && calls.is_empty() {
                    f.lost += 1;
                    f.notes.push(format!(
                        "lost: job {id} never called the receiver (status {})",
                        task.map(|t| t.status.as_str()).unwrap_or("?")
                    ));
                } else if r.job && task.is_some_and(|t| t.status != "completed") {
                    f.stuck += 1;
                    f.notes.push(format!(
                        "stuck: job {id} called the receiver but is still {}",
                        task.map(|t| t.status.as_str()).unwrap_or("?")
                    ));
                }
                if r.sent >= healed && f.api_recovery.is_none_or(|d| r.answered - healed < d) {
                    f.api_recovery = Some(r.answered.saturating_duration_since(healed));
                }
            }
            Outcome::Failed(why) => {
                f.failed += 1;
                if task.is_some() || !calls.is_empty() {
                    f.unexpected += 1;
                    f.notes.push(format!(
                        "unexpected: request {} failed ({why}) but its task exists ({}) / {} calls",
                        r.req,
                        task.map(|t| t.id.to_string()).unwrap_or("none".into()),
                        calls.len()
                    ));
                }
            }
            Outcome::Unknown(_) => {
                f.unknown += 1;
                if task.is_some() {
                    f.unknown_done += 1;
                }
            }
        }
        if let Some(task) = task.filter(|t| !t.job) {
            match notes.get(&task.id).copied().unwrap_or(0) {
                0 if matches!(r.outcome, Outcome::Ok(_)) => {
                    f.lost += 1;
                    f.notes
                        .push(format!("lost: task {} has no notification", task.id));
                }
                0 => {}
                n => {
                    f.effects += 1;
                    if n > 1 {
                        f.duplicated += n - 1;
                        f.notes
                            .push(format!("duplicated: task {} notified {n} times", task.id));
                    }
                }
            }
        }
        if calls.is_empty() {
            continue;
        }
        f.effects += 1;
        if r.sent < healed {
            let first = calls.iter().map(|c| c.at).min().unwrap();
            backlog = backlog.max(first.saturating_duration_since(healed));
        }
        let keys: HashSet<&str> = calls.iter().map(|c| c.key.as_str()).collect();
        let extra = calls.len() - 1;
        let allowed = task
            .and_then(|t| allowance.get(&t.id))
            .copied()
            .unwrap_or(0);
        // A worker killed after the call but before its report was confirmed leaves no
        // trace in the history when the run was younger than
        // `workers.report_started_after_ms`: a pair of calls on either side of a worker's
        // death is a re-run too.
        let mut times: Vec<Instant> = calls.iter().map(|c| c.at).collect();
        times.sort();
        let straddles = times
            .windows(2)
            .filter(|w| worker_deaths.iter().any(|d| w[0] < *d && *d <= w[1]))
            .count();
        let reruns = extra.min(allowed + straddles);
        let dup = (extra - reruns).max(keys.len() - 1);
        f.reruns += reruns;
        if dup > 0 {
            f.duplicated += dup;
            f.notes.push(format!(
                "duplicated: request {} ({}) called the receiver {} times under {} key(s), {} rerun(s) explained",
                r.req,
                task.map(|t| t.id.to_string()).unwrap_or("no task".into()),
                calls.len(),
                keys.len(),
                reruns
            ));
        }
    }
    // Tasks nobody asked for.
    for (req, task) in &tasks {
        if !mine.contains(req) {
            f.unexpected += 1;
            f.notes.push(format!(
                "unexpected: task {} for no request of this fault",
                task.id
            ));
        }
    }
    let all_jobs_effected = records.iter().all(|r| {
        !(r.job && matches!(r.outcome, Outcome::Ok(_)) && receiver.calls(&r.req).is_empty())
    });
    f.backlog_recovery = all_jobs_effected.then_some(backlog);
    Ok(f)
}

/// Problems only visible at the end of the run: calls for requests of finished faults that
/// arrived after their check (late duplicates), and calls for requests nobody made.
pub fn at_the_end(
    receiver: &Receiver,
    counted: &HashMap<Uuid, usize>,
) -> (usize, usize, Vec<String>) {
    let (mut duplicated, mut unexpected, mut notes) = (0, 0, Vec::new());
    for (req, before) in counted {
        let now = receiver.calls(req).len();
        if now > *before {
            duplicated += now - before;
            notes.push(format!(
                "duplicated: request {req} called the receiver {} more time(s) after its fault was checked",
                now - before
            ));
        }
    }
    for req in receiver.requests() {
        if !counted.contains_key(&req) {
            unexpected += 1;
            notes.push(format!(
                "unexpected: receiver called for request {req}, which nobody made"
            ));
        }
    }
    if receiver.strays() > 0 {
        unexpected += receiver.strays();
        notes.push(format!(
            "unexpected: {} receiver calls without a request id",
            receiver.strays()
        ));
    }
    (duplicated, unexpected, notes)
}
