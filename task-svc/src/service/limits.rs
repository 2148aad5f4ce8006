//! Per-key limits applied ([`crate::domain::limit`]): which new jobs of a key start at once
//! and when, and admitting a key's waiting jobs when places free up: after its jobs end (a
//! report batch), and every second for whatever else ended them (a cancel, a deletion).
//! Every admission of a key holds its `job_limits` row lock, so replicas agree.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        job::ParsedJob,
        limit::{free_places, pace},
        status::Status,
        task::Task,
    },
    store,
};

/// Most waiting jobs of one key admitted at a time (the rest at the next end or sweep).
const MAX_ADMITTED: usize = 1000;

/// What a new job's limit decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// No limit applies (none, a cron template, a workflow step waiting for its needs).
    Unlimited,
    /// Dispatched now, to start at once (`None`) or at its paced time.
    Admitted(Option<DateTime<Utc>>),
    /// Over its limit: written without a dispatch, admitted when its key has room.
    Waits,
}

impl Admission {
    /// The job's `limit_state` it makes: none, `admitted` or `waiting`.
    pub fn state(self) -> Option<&'static str> {
        match self {
            Admission::Unlimited => None,
            Admission::Admitted(_) => Some("admitted"),
            Admission::Waits => Some("waiting"),
        }
    }
}

/// Decides for each new job of `items` (in a creation's transaction). A key with waiting jobs
/// admits no newcomer before them; keys are locked in one order.
pub async fn reserve(
    tx: &mut PgConnection,
    items: &[(&Task, &ParsedJob)],
) -> Result<Vec<Admission>, sqlx::Error> {
    let mut result = vec![Admission::Unlimited; items.len()];
    let mut keys: BTreeMap<(Uuid, &str), Vec<usize>> = BTreeMap::new();
    for (i, (task, job)) in items.iter().enumerate() {
        if let Some(limit) = job
            .limit
            .as_ref()
            .filter(|_| !job.held && job.cron.is_none())
        {
            keys.entry((task.owner_id, limit.key.as_str()))
                .or_default()
                .push(i);
        }
    }
    let now = Utc::now();
    for ((owner, key), members) in keys {
        let latest = items[*members.last().expect("a key has a job")].1;
        let limit = latest.limit.as_ref().expect("a limited job");
        let row = store::limits::lock_with(tx, owner, limit).await?;
        let (in_flight, waiting) = store::limits::counts(tx, owner, key).await?;
        let admitted = if waiting {
            0
        } else {
            free_places(row.concurrency, in_flight, members.len())
        };
        let (starts, next) = pace(row.per_second, row.next_at, now, admitted);
        if admitted > 0 && row.per_second.is_some() {
            store::limits::set_next(tx, owner, key, next).await?;
        }
        record(&starts, members.len() - admitted, now, &[]);
        for (n, &i) in members.iter().enumerate() {
            result[i] = match starts.get(n) {
                Some(start) => Admission::Admitted(*start),
                None => Admission::Waits,
            };
        }
    }
    Ok(result)
}

/// Admits the waiting jobs of `keys` that their limits now allow, oldest first, dispatching
/// them. `skip`: leaves a key another transaction holds (the sweep); else waits for it.
/// Returns how many were admitted.
pub async fn admit(
    tx: &mut PgConnection,
    mut keys: Vec<(Uuid, String)>,
    skip: bool,
) -> Result<usize, sqlx::Error> {
    keys.sort_unstable();
    keys.dedup();
    let now = Utc::now();
    let mut total = 0;
    for (owner, key) in keys {
        let Some(row) = store::limits::lock(tx, owner, &key, skip).await? else {
            continue;
        };
        let (in_flight, waiting) = store::limits::counts(tx, owner, &key).await?;
        let room = free_places(row.concurrency, in_flight, MAX_ADMITTED);
        if room == 0 || !waiting {
            continue;
        }
        let chosen = store::limits::oldest_waiting(tx, owner, &key, room).await?;
        if chosen.is_empty() {
            continue;
        }
        let (starts, next) = pace(row.per_second, row.next_at, now, chosen.len());
        if row.per_second.is_some() {
            store::limits::set_next(tx, owner, &key, next).await?;
        }
        let ids: Vec<Uuid> = chosen.iter().map(|(id, _)| *id).collect();
        store::limits::set_admitted(tx, &ids).await?;
        for ((id, _), start) in chosen.iter().zip(&starts) {
            let Some(task) = store::tasks::find(tx, *id, false).await? else {
                continue;
            };
            crate::service::dispatch::dispatch(tx, &task, 1, *start, true).await?;
        }
        let since: Vec<DateTime<Utc>> = chosen.iter().map(|(_, since)| *since).collect();
        record(&starts, 0, now, &since);
        total += chosen.len();
    }
    if total > 0 {
        // What the key waited for: published at the commit, not after the relay's linger.
        shared::outbox::wake_now(tx).await?;
    }
    Ok(total)
}

/// Hands job `task` (queued, not dispatched: a released workflow step, a replayed dead job, a
/// retried step) its first dispatch, through its key's admission if it has a limit.
pub async fn dispatch_first(tx: &mut PgConnection, task: &Task) -> Result<(), sqlx::Error> {
    let settings = store::jobs::dispatch_settings(tx, task.id).await?;
    dispatch_first_with(tx, task, settings).await
}

/// As [`dispatch_first`], with the job's settings already read.
pub async fn dispatch_first_with(
    tx: &mut PgConnection,
    task: &Task,
    settings: store::jobs::DispatchSettings,
) -> Result<(), sqlx::Error> {
    if settings.limit_key.is_none() {
        crate::service::dispatch::dispatch_with(tx, task, settings, 1, None, true).await?;
        return Ok(());
    }
    if let Some((owner, limit)) = store::limits::set_waiting(tx, task.id).await? {
        // Never waiting for a key's lock here (a report batch may be releasing this step):
        // a key another transaction holds admits it at its next end or sweep.
        store::limits::ensure(tx, owner, &limit).await?;
        admit(tx, vec![(owner, limit.key)], true).await?;
    }
    Ok(())
}

/// When the retry of one of `owner`'s `key` jobs, due at `due`, may start: at `due`, or later
/// to keep the key's pace. Never waits for the key's lock (a report batch calls it): a key
/// another transaction holds leaves the retry at `due`.
pub async fn pace_retry(
    tx: &mut PgConnection,
    owner: Uuid,
    key: &str,
    due: DateTime<Utc>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let Some(row) = store::limits::lock(tx, owner, key, true).await? else {
        return Ok(due);
    };
    if row.per_second.is_none() {
        return Ok(due);
    }
    let (starts, next) = pace(row.per_second, row.next_at, due, 1);
    store::limits::set_next(tx, owner, key, next).await?;
    Ok(starts[0].unwrap_or(due))
}

/// After a report batch: admits what the keys of completed jobs (`keys`) and of the `touched`
/// tasks that ended otherwise (dead, cancelled) now allow.
pub async fn after_ends(
    tx: &mut PgConnection,
    touched: &[Task],
    mut keys: Vec<(Uuid, String)>,
) -> Result<(), sqlx::Error> {
    let ended: Vec<Uuid> = touched
        .iter()
        .filter(|t| matches!(t.status, Status::Dead | Status::Cancelled))
        .map(|t| t.id)
        .collect();
    if !ended.is_empty() {
        keys.extend(store::limits::keys_of(tx, &ended).await?);
    }
    if !keys.is_empty() {
        // A key another transaction holds (a creation) is left to the sweep: a report batch
        // never waits for a key's lock.
        admit(tx, keys, true).await?;
    }
    Ok(())
}

/// One sweep: the keys with waiting jobs and room, each admitting what it allows (keys another
/// replica holds are skipped). Catches the places freed by cancels, deletions, deactivated
/// owners, and admissions a busy key's lock put off.
pub async fn sweep(pool: &sqlx::PgPool) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let keys = store::limits::with_room(&mut tx).await?;
    if keys.is_empty() {
        return Ok(0);
    }
    let admitted = admit(&mut tx, keys, true).await?;
    tx.commit().await?;
    Ok(admitted)
}

/// The caller's keys, as `GET /api/v1/limits` shows them.
pub async fn summary(
    state: &crate::AppState,
    identity: &shared::identity::Identity,
) -> Result<Vec<crate::domain::limit::KeySummary>, crate::error::TaskError> {
    let mut conn = state.pool.acquire().await?;
    Ok(store::limits::summary(&mut conn, identity.user_id).await?)
}

/// Metrics: jobs held back (waiting, or paced to a later start) and how long the admitted
/// ones waited.
fn record(
    starts: &[Option<DateTime<Utc>>],
    waiting: usize,
    now: DateTime<Utc>,
    since: &[DateTime<Utc>],
) {
    let paced = starts.iter().filter(|s| s.is_some()).count();
    let throttled = (waiting + paced) as u64;
    if throttled > 0 {
        metrics::counter!("taskmesh_jobs_throttled_total").increment(throttled);
    }
    for (n, start) in starts.iter().enumerate() {
        let from = since.get(n).copied().unwrap_or(now);
        let wait = (start.unwrap_or(now) - from).num_milliseconds().max(0) as f64 / 1000.0;
        if since.get(n).is_some() || start.is_some() {
            metrics::histogram!("taskmesh_job_limit_wait_seconds").record(wait);
        }
    }
}
