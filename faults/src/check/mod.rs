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
//!   harmless. Any other repeated call is a duplicate, and so is a call under a second key, a
//!   second successful run of one job (whatever its calls' times), and a second notification
//!   for one task.
//! - **stuck**: an ok job whose receiver was called but which never reached `completed`: the
//!   effect happened, the task does not say so.
//! - **unexpected**: a task or a call for a request the client was told had failed, or for a
//!   request the client never made.
//!
//! media-svc's files (one attached to each person's task): see [`files`].
//!
//! notify-svc's mail and webhooks (the peer's, about each person's task):
//! - **mails** are counted by Message-ID at the SMTP sink: its UUID is the `messages` row's id,
//!   joined to the task through the `task.assigned` notification's event. An ok, notified
//!   person's task without any mail at the sink is *lost*; a second distinct Message-ID for one
//!   task is *duplicated*. The same Message-ID stored twice is a *resend*: a crash or a cut
//!   connection between the server's `250` and notify-svc's database update sends the mail
//!   again, unchanged, so its reader's client shows it once. Resends are their own column and
//!   only count as duplicated under a fault that cannot cut that window ([`may_resend`]).
//! - **webhooks** are counted by `webhook-id` at the hooks receiver: an ok, notified person's
//!   task without a delivery answered 2xx is *lost*; a second distinct `webhook-id` for one task
//!   is *duplicated*; attempts of the same `webhook-id` (after a 500, a timeout, a reset) are
//!   *retries*, which the id makes harmless.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::receiver::{Hooks, Receiver};

mod files;
mod late;
use crate::smtp::SmtpSink;
use crate::workload::{title_prefix, Outcome, Record};
pub use files::{files, FileFigures};
pub use late::{at_the_end, Late, Told};

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
    /// Distinct Message-IDs at the SMTP sink for this fault's person's tasks.
    pub mails: usize,
    /// Failed attempts notify-svc recorded for those mails before they left (its `attempts`
    /// beyond the first): how hard the fault bit.
    pub mail_retries: usize,
    /// Extra files with a Message-ID already stored (the same mail sent again).
    pub resent: usize,
    /// Distinct `webhook-id`s delivered (answered 2xx) for this fault's person's tasks.
    pub hooks: usize,
    /// Webhook attempts beyond the first of each `webhook-id`.
    pub hook_retries: usize,
    /// Files attached to this fault's person's tasks that are there (row and object).
    pub files: usize,
    /// Objects on the S3 server no row refers to, over the whole run ([`files`]).
    pub orphans: usize,
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

/// Tasks whose job succeeded more than once (by task: how many successful runs).
async fn twice_succeeded(db: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, usize>> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT task_id, count(*) FROM job_attempts
          WHERE task_id = ANY($1) AND outcome = 'succeeded'
          GROUP BY task_id HAVING count(*) > 1",
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

/// A queued mail (a `messages` row) about a person's task.
#[derive(Clone, Debug)]
pub struct MailRow {
    pub id: Uuid,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// The `task.assigned` mails of each task (its notification's event, recipient and kind).
async fn mail_rows(notify: &PgPool, ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Vec<MailRow>>> {
    let subjects: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let rows: Vec<(String, Uuid, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT n.subject, m.id, m.state, m.attempts, m.last_error
           FROM notifications n
           JOIN messages m ON m.event_id = n.event_id AND m.user_id = n.user_id
                          AND m.kind = n.kind AND m.channel = 'email'
          WHERE n.kind = 'task.assigned' AND n.subject = ANY($1)",
    )
    .bind(&subjects)
    .fetch_all(notify)
    .await?;
    let mut out: HashMap<Uuid, Vec<MailRow>> = HashMap::new();
    for (subject, id, state, attempts, last_error) in rows {
        if let Ok(task) = subject.parse() {
            out.entry(task).or_default().push(MailRow {
                id,
                state,
                attempts,
                last_error,
            });
        }
    }
    Ok(out)
}

/// Every Message-ID notify-svc may send: its mail rows and digests (welcome mails included).
pub async fn known_mail_ids(notify: &PgPool) -> anyhow::Result<HashSet<Uuid>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM messages WHERE channel = 'email'
         UNION SELECT digest_id FROM messages WHERE digest_id IS NOT NULL",
    )
    .fetch_all(notify)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Whether fault `name` can cut the window between the SMTP server's `250` and notify-svc's
/// database update (a process or connection killed there), so that the same mail is
/// legitimately sent again.
pub fn may_resend(name: &str) -> bool {
    name == "kill9:notify-svc"
        || name.starts_with("postgres:")
        || name.starts_with("smtp:")
        || name == "resets:notify-svc->smtp"
        || name == "resets:notify-svc->postgres"
}

const TERMINAL: [&str; 3] = ["completed", "dead", "cancelled"];

/// Waits (until `deadline`) for every job of fault `tag` to finish and for the receiver to go
/// quiet; returns whether everything settled.
#[allow(clippy::too_many_arguments)]
pub async fn settle(
    db: &PgPool,
    notify: &PgPool,
    receiver: &Receiver,
    sink: &SmtpSink,
    hooks: &Hooks,
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
            // Each notified task's mail is at the sink (or given up: `failed`), and its webhook
            // was answered 2xx.
            let all_told = all_notified
                && match mail_rows(notify, &people).await {
                    Ok(mails) => {
                        let at_sink = sink.mails();
                        people.iter().all(|id| {
                            mails.get(id).is_some_and(|rows| {
                                rows.iter().any(|m| {
                                    m.state == "failed" || at_sink.contains_key(&Some(m.id))
                                })
                            }) && hooks
                                .calls(id)
                                .iter()
                                .any(|c| (200..300).contains(&c.status))
                        })
                    }
                    Err(_) => false,
                };
            if all_ok_exist && jobs_done && all_told {
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

/// Counts lost, duplicated and unexpected for fault `tag`, whose fault ended at `healed`; fills
/// `told` with what each of its person's tasks got by mail and webhook.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    db: &PgPool,
    notify: &PgPool,
    receiver: &Receiver,
    sink: &SmtpSink,
    hooks: &Hooks,
    tag: &str,
    records: &[Record],
    healed: Instant,
    worker_deaths: &[Instant],
    told: &mut HashMap<Uuid, Told>,
) -> anyhow::Result<Figures> {
    let tasks = tasks(db, tag).await?;
    let ids: Vec<Uuid> = tasks.values().map(|t| t.id).collect();
    let allowance = rerun_allowance(db, &ids).await?;
    let twice = twice_succeeded(db, &ids).await?;
    let notes = notifications(notify, &ids).await?;
    let mails = mail_rows(notify, &ids).await?;
    let at_sink = sink.mails();
    let resend_ok = may_resend(tag);
    let healed_wall = std::time::SystemTime::now() - healed.elapsed();
    let mut people_told = true;
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
            let notified = notes.contains_key(&task.id);
            let ok = matches!(r.outcome, Outcome::Ok(_));
            // The mail to the peer, by Message-ID at the sink.
            let rows = mails.get(&task.id).cloned().unwrap_or_default();
            let mut distinct = 0;
            let mut files = 0;
            let mut repeats = 0;
            for row in &rows {
                let stored = at_sink.get(&Some(row.id)).cloned().unwrap_or_default();
                if let Some(first) = stored.iter().min() {
                    distinct += 1;
                    if r.sent < healed {
                        let late = first.duration_since(healed_wall).unwrap_or_default();
                        backlog = backlog.max(late);
                    }
                }
                files += stored.len();
                repeats += stored.len().saturating_sub(1);
            }
            f.mails += distinct;
            f.mail_retries += rows
                .iter()
                .map(|m| usize::try_from(m.attempts - 1).unwrap_or(0))
                .sum::<usize>();
            if distinct == 0 && ok && notified {
                f.lost += 1;
                people_told = false;
                let states: Vec<String> = rows
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {} after {} attempt(s): {}",
                            m.id,
                            m.state,
                            m.attempts,
                            m.last_error.as_deref().unwrap_or("-")
                        )
                    })
                    .collect();
                f.notes.push(format!(
                    "lost: task {} has no mail at the SMTP sink (messages: {})",
                    task.id,
                    if states.is_empty() {
                        "none".into()
                    } else {
                        states.join("; ")
                    }
                ));
            }
            if distinct > 1 {
                f.duplicated += distinct - 1;
                f.notes.push(format!(
                    "duplicated: task {} mailed under {distinct} Message-IDs",
                    task.id
                ));
            }
            if repeats > 0 {
                f.resent += repeats;
                if resend_ok {
                    f.notes.push(format!(
                        "resent: task {}'s mail stored {files} times under one Message-ID",
                        task.id
                    ));
                } else {
                    f.duplicated += repeats;
                    f.notes.push(format!(
                        "duplicated: task {}'s mail stored {files} times under one Message-ID, under a fault that cannot explain a resend",
                        task.id
                    ));
                }
            }
            // The webhook, by `webhook-id` at the hooks receiver.
            let attempts = hooks.calls(&task.id);
            let hook_ids: HashSet<&str> = attempts.iter().map(|c| c.id.as_str()).collect();
            let delivered: Vec<_> = attempts
                .iter()
                .filter(|c| (200..300).contains(&c.status))
                .collect();
            let delivered_ids: HashSet<&str> = delivered.iter().map(|c| c.id.as_str()).collect();
            f.hooks += delivered_ids.len();
            f.hook_retries += attempts.len() - hook_ids.len();
            if let Some(first) = delivered.iter().map(|c| c.at).min() {
                if r.sent < healed {
                    backlog = backlog.max(first.saturating_duration_since(healed));
                }
            } else if ok && notified {
                f.lost += 1;
                people_told = false;
                let answers: Vec<String> = attempts.iter().map(|c| c.status.to_string()).collect();
                f.notes.push(format!(
                    "lost: task {} has no webhook delivered ({} attempt(s) answered {})",
                    task.id,
                    attempts.len(),
                    answers.join(",")
                ));
            }
            if hook_ids.len() > 1 {
                f.duplicated += hook_ids.len() - 1;
                f.notes.push(format!(
                    "duplicated: task {} got webhooks under {} webhook-ids",
                    task.id,
                    hook_ids.len()
                ));
            }
            told.insert(
                task.id,
                Told {
                    mail_ids: rows.iter().map(|m| m.id).collect(),
                    mail_files: files,
                    hook_ids: hook_ids.len(),
                },
            );
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
        // A job that succeeded twice ran once too often, whatever its calls' times explain.
        let succeeded = task.and_then(|t| twice.get(&t.id)).copied().unwrap_or(1);
        let dup = (extra - reruns).max(keys.len() - 1).max(succeeded - 1);
        f.reruns += reruns;
        if dup > 0 {
            f.duplicated += dup;
            f.notes.push(format!(
                "duplicated: request {} ({}) called the receiver {} times under {} key(s), {} rerun(s) explained, {} successful run(s)",
                r.req,
                task.map(|t| t.id.to_string()).unwrap_or("no task".into()),
                calls.len(),
                keys.len(),
                reruns,
                succeeded
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
    f.backlog_recovery = (all_jobs_effected && people_told).then_some(backlog);
    Ok(f)
}
