//! One run per dispatch, whichever worker receives it: a claim in Redis per dispatch id.
//!
//! The broker delivers at least once. A dispatch whose channel died while it ran (the broker
//! restarted, a connection was reset) is handed out again even though its run goes on and
//! reports; without a claim the copy would run a second time. So before running, a worker
//! claims the dispatch (`<prefix>jobs:dispatch:<dispatch_id>` = `run:<run_id>`, a short TTL that
//! is extended while the run holds it), and once its report is confirmed by the broker the
//! claim is marked `done` for a day (unless another run took it over meanwhile). task-svc marks
//! it `done` too, as it applies the report
//! ([`shared::cache::mark_dispatch_done`]): a worker that dies between its report's confirm and
//! its own mark leaves a finished dispatch marked all the same. A copy that finds `done` is
//! settled without running; one that finds a live run waits until that run is done (settled
//! without running) or its claim lapses (its worker died before reporting: the copy runs).
//!
//! What it costs per job, on the path of every dispatch: one round trip to claim (the same
//! script also reads the task's cancel mark, which the worker needs anyway), nothing while it
//! runs (one loop per worker extends every held claim in one pipeline), and for marking done a
//! share of one pipeline per report batch, written by the reporter after the batch's confirm
//! ([`Claims::settle`]).
//!
//! Without Redis the worker runs the dispatch anyway (at least once, as the broker promises)
//! and says so in its log.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use redis::{aio::ConnectionManager, Script};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

/// A live run's claim lapses this long after its worker stopped extending it.
pub const CLAIM_TTL: Duration = Duration::from_secs(10);
/// Held claims are extended this often.
pub const CLAIM_REFRESH: Duration = Duration::from_secs(3);
/// How often a copy looks again at a claim held by another run.
const RECHECK: Duration = Duration::from_millis(250);

/// What a worker may do with a dispatch it received.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Run it: this run holds the claim (or Redis could not be asked). `cancelled`: the task's
    /// cancel mark was there.
    Run { cancelled: bool },
    /// Another run finished it (its report is with the broker): settle without running.
    Done,
    /// The worker stopped taking jobs while another run held the claim, or that run held it
    /// past its time: hand it back.
    Abandoned,
}

/// Claims `KEYS[1]` for `ARGV[1]` (TTL `ARGV[2]` ms) unless someone holds it, and reads the
/// cancel mark `KEYS[2]`: `{1, cancelled}` claimed, `{2, cancelled}` done, `{0, cancelled}` held
/// by a live run.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cancelled = redis.call('EXISTS', KEYS[2])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, cancelled} end
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, 5) == 'done:' then return {2, cancelled} end
return {0, cancelled}",
    )
});

/// Extends the claim only while it is still this run's.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// Drops the claim only while it is still this run's (a handed-back run frees it at once).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// Marks the claim `done` (`ARGV[2]`, for `ARGV[3]` ms) only while it is this run's, lapsed, or
/// done already: a run that another took over (its claim lapsed while it ran) leaves the live
/// run's claim alone. (task-svc marks a success done whoever holds the claim.)
static DONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] or string.sub(holder, 1, 5) == 'done:' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0",
    )
});

/// How a finished run leaves its claim ([`Claims::settle`]).
pub struct Settle {
    pub dispatch_id: Uuid,
    pub run_id: Uuid,
    /// `Some(outcome)`: its report is confirmed, mark it done; `None`: free it for a copy to
    /// run at once (handed back, or the report was not confirmed).
    pub done: Option<&'static str>,
}

/// Claims of one worker process.
#[derive(Clone)]
pub struct Claims {
    redis: ConnectionManager,
    prefix: String,
    /// The claims this process's runs hold, extended together.
    held: Arc<Holding>,
}

/// The claims held (dispatch id → run id); the loop extending them stops once neither the
/// claims nor any hold is left.
struct Holding {
    runs: Mutex<HashMap<Uuid, Uuid>>,
    _extending: DropGuard,
}

/// A run's hold on its claim: extended until dropped.
pub struct Held {
    held: Arc<Holding>,
    dispatch_id: Uuid,
    run_id: Uuid,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.runs.lock().unwrap();
        if held.get(&self.dispatch_id) == Some(&self.run_id) {
            held.remove(&self.dispatch_id);
        }
    }
}

fn run_value(run_id: Uuid) -> String {
    format!("run:{run_id}")
}

/// Adds `script` on one claim key with the run as its first argument to `pipe` (by hash: see
/// [`query`] for a Redis that lost it).
fn evalsha<'a>(
    pipe: &'a mut redis::Pipeline,
    script: &Script,
    key: &str,
    run_id: Uuid,
) -> &'a mut redis::Pipeline {
    pipe.cmd("EVALSHA")
        .arg(script.get_hash())
        .arg(1)
        .arg(key)
        .arg(run_value(run_id))
}

impl Claims {
    /// Claims in `redis` under `prefix`; held claims are extended as long as any clone lives.
    pub fn new(redis: ConnectionManager, prefix: String) -> Self {
        let extending = CancellationToken::new();
        let held = Arc::new(Holding {
            runs: Mutex::default(),
            _extending: extending.clone().drop_guard(),
        });
        tokio::spawn(extend_held(
            Arc::downgrade(&held),
            redis.clone(),
            prefix.clone(),
            extending,
        ));
        Self {
            redis,
            prefix,
            held,
        }
    }

    fn key(&self, dispatch_id: Uuid) -> String {
        shared::cache::dispatch_claim_key(&self.prefix, dispatch_id)
    }

    /// Claims `dispatch_id` for `run_id`, waiting while another live run holds it (until
    /// `stop`, or `deadline`: past it the holder is not a run that is still doing its work),
    /// and says whether `task_id` carries a cancel mark.
    pub async fn acquire(
        &self,
        dispatch_id: Uuid,
        run_id: Uuid,
        task_id: Uuid,
        stop: &CancellationToken,
        deadline: Instant,
    ) -> Claim {
        let key = self.key(dispatch_id);
        let cancel_mark = shared::cache::cancel_mark_key(&self.prefix, task_id);
        let mine = run_value(run_id);
        let mut redis = self.redis.clone();
        let mut waited = false;
        loop {
            let answer: redis::RedisResult<(u8, bool)> = CLAIM
                .key(&key)
                .key(&cancel_mark)
                .arg(&mine)
                .arg(CLAIM_TTL.as_millis() as u64)
                .invoke_async(&mut redis)
                .await;
            match answer {
                Ok((1, cancelled)) => return Claim::Run { cancelled },
                Ok((2, _)) => return Claim::Done,
                // Held by a live run: look again shortly.
                Ok(_) => {
                    if !waited {
                        tracing::info!(%dispatch_id, "another run holds this dispatch; waiting for it");
                        waited = true;
                    }
                    if Instant::now() >= deadline {
                        tracing::warn!(%dispatch_id, "another run still holds this dispatch past its time; handing the copy back");
                        return Claim::Abandoned;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return Claim::Abandoned,
                        _ = tokio::time::sleep(RECHECK.min(deadline.saturating_duration_since(Instant::now()))) => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(%dispatch_id, error = %err, "cannot claim the dispatch; running it (at least once)");
                    return Claim::Run { cancelled: false };
                }
            }
        }
    }

    /// Keeps `run_id`'s claim alive (extended with the others held) until the returned hold drops.
    pub fn hold(&self, dispatch_id: Uuid, run_id: Uuid) -> Held {
        self.held.runs.lock().unwrap().insert(dispatch_id, run_id);
        Held {
            held: self.held.clone(),
            dispatch_id,
            run_id,
        }
    }

    /// Marks each finished run's claim done, or frees it, in one pipeline.
    pub async fn settle(&self, runs: &[Settle]) {
        if runs.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for run in runs {
            match run.done {
                Some(outcome) => {
                    evalsha(&mut pipe, &DONE, &self.key(run.dispatch_id), run.run_id)
                        .arg(format!("done:{outcome}"))
                        .arg(shared::cache::DISPATCH_DONE_TTL.as_millis() as u64)
                        .ignore();
                }
                None => {
                    evalsha(&mut pipe, &RELEASE, &self.key(run.dispatch_id), run.run_id).ignore();
                }
            }
        }
        let mut redis = self.redis.clone();
        if let Err(err) = query(&mut redis, &pipe, &[&RELEASE, &DONE]).await {
            tracing::warn!(runs = runs.len(), error = %err, "cannot settle the dispatch claims; a redelivered copy of a finished run would run again once its claim lapses");
        }
    }
}

/// Extends every held claim every [`CLAIM_REFRESH`], in one pipeline, until `stop` (the
/// claims and every hold are gone).
async fn extend_held(
    held: std::sync::Weak<Holding>,
    redis: ConnectionManager,
    prefix: String,
    stop: CancellationToken,
) {
    shared::background::every_after(CLAIM_REFRESH, &stop, || {
        extend_round(&held, redis.clone(), &prefix)
    })
    .await
}

/// One round of [`extend_held`].
async fn extend_round(held: &std::sync::Weak<Holding>, mut redis: ConnectionManager, prefix: &str) {
    let Some(held) = held.upgrade() else { return };
    let runs: Vec<(Uuid, Uuid)> = (held.runs.lock().unwrap().iter())
        .map(|(d, r)| (*d, *r))
        .collect();
    drop(held);
    if runs.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (dispatch_id, run_id) in &runs {
        let key = shared::cache::dispatch_claim_key(prefix, *dispatch_id);
        evalsha(&mut pipe, &EXTEND, &key, *run_id)
            .arg(CLAIM_TTL.as_millis() as u64)
            .ignore();
    }
    if let Err(err) = query(&mut redis, &pipe, &[&EXTEND]).await {
        tracing::warn!(claims = runs.len(), error = %err, "cannot extend the held dispatch claims");
    }
}

/// Runs `pipe`, loading `scripts` and trying once more if Redis had lost one (a restart).
async fn query(
    redis: &mut ConnectionManager,
    pipe: &redis::Pipeline,
    scripts: &[&Script],
) -> redis::RedisResult<()> {
    match pipe.query_async::<()>(redis).await {
        Err(err) if err.kind() == redis::ErrorKind::NoScriptError => {
            for script in scripts {
                script.prepare_invoke().load_async(redis).await?;
            }
            pipe.query_async::<()>(redis).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims on the machine's Redis under a prefix of their own.
    async fn claims() -> Claims {
        let client = redis::Client::open("redis://127.0.0.1:6379").expect("a Redis URL");
        let redis = ConnectionManager::new(client)
            .await
            .expect("Redis runs on 127.0.0.1:6379 (scripts/test starts it)");
        Claims::new(redis, format!("test-claims-{}:", Uuid::now_v7()))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// The answer of `acquire`, or a failure if it has not come within a minute (it waits for
    /// nothing that takes that long in these tests).
    async fn answer(claim: impl std::future::Future<Output = Claim>) -> Claim {
        tokio::time::timeout(Duration::from_secs(60), claim)
            .await
            .expect("acquire answered")
    }

    #[tokio::test]
    async fn a_copy_waiting_on_a_live_run_is_handed_back_when_the_worker_stops() {
        let claims = claims().await;
        let (dispatch, task) = (Uuid::now_v7(), Uuid::now_v7());
        let never = CancellationToken::new();
        let first = claims.acquire(dispatch, Uuid::now_v7(), task, &never, far());
        assert_eq!(answer(first).await, Claim::Run { cancelled: false });
        let stop = CancellationToken::new();
        let copy = {
            let (claims, stop) = (claims.clone(), stop.clone());
            tokio::spawn(async move {
                claims
                    .acquire(dispatch, Uuid::now_v7(), task, &stop, far())
                    .await
            })
        };
        stop.cancel();
        assert_eq!(
            answer(async { copy.await.unwrap() }).await,
            Claim::Abandoned
        );
    }

    #[tokio::test]
    async fn a_copy_is_handed_back_once_the_live_run_holds_it_past_its_deadline() {
        let claims = claims().await;
        let (dispatch, task) = (Uuid::now_v7(), Uuid::now_v7());
        let never = CancellationToken::new();
        let first = claims.acquire(dispatch, Uuid::now_v7(), task, &never, far());
        assert_eq!(answer(first).await, Claim::Run { cancelled: false });
        let soon = Instant::now() + RECHECK;
        let copy = claims.acquire(dispatch, Uuid::now_v7(), task, &never, soon);
        assert_eq!(answer(copy).await, Claim::Abandoned);
    }

    #[tokio::test]
    async fn a_finished_run_settles_its_copies_without_running_them() {
        let claims = claims().await;
        let (dispatch, task, run) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let never = CancellationToken::new();
        let first = claims.acquire(dispatch, run, task, &never, far());
        assert_eq!(answer(first).await, Claim::Run { cancelled: false });
        claims
            .settle(&[Settle {
                dispatch_id: dispatch,
                run_id: run,
                done: Some("succeeded"),
            }])
            .await;
        let copy = claims.acquire(dispatch, Uuid::now_v7(), task, &never, far());
        assert_eq!(answer(copy).await, Claim::Done);
    }

    #[tokio::test]
    async fn a_run_that_was_taken_over_leaves_the_live_runs_claim_alone() {
        let claims = claims().await;
        let (dispatch, task) = (Uuid::now_v7(), Uuid::now_v7());
        let (stale, live) = (Uuid::now_v7(), Uuid::now_v7());
        let never = CancellationToken::new();
        // The stale run's claim lapsed and `live` claimed the dispatch; then the stale run ends.
        let taken = claims.acquire(dispatch, live, task, &never, far());
        assert_eq!(answer(taken).await, Claim::Run { cancelled: false });
        claims
            .settle(&[Settle {
                dispatch_id: dispatch,
                run_id: stale,
                done: Some("failed"),
            }])
            .await;
        // A copy still waits on the live run (handed back at its deadline), never settled.
        let soon = Instant::now() + RECHECK;
        let copy = claims.acquire(dispatch, Uuid::now_v7(), task, &never, soon);
        assert_eq!(answer(copy).await, Claim::Abandoned);
    }

    #[tokio::test]
    async fn a_hold_is_extended_only_until_it_drops() {
        let claims = claims().await;
        let (dispatch, run) = (Uuid::now_v7(), Uuid::now_v7());
        let hold = claims.hold(dispatch, run);
        assert_eq!(claims.held.runs.lock().unwrap().get(&dispatch), Some(&run));
        drop(hold);
        assert!(claims.held.runs.lock().unwrap().is_empty());
    }
}
