//! One run per dispatch, whichever worker receives it: a claim in Redis per dispatch id.
//!
//! The broker delivers at least once. A dispatch whose channel died while it ran (the broker
//! restarted, a connection was reset) is handed out again even though its run goes on and
//! reports; without a claim the copy would run a second time. So before running, a worker
//! claims the dispatch (`<prefix>jobs:dispatch:<dispatch_id>` = `run:<run_id>`, a short TTL the
//! run keeps extending), and once its report is confirmed by the broker it marks the claim
//! `done` for a day. A copy that finds `done` is settled without running; one that finds a live
//! run waits until that run is done (settled without running) or its claim lapses (its worker
//! died: the copy runs).
//!
//! Without Redis the worker runs the dispatch anyway (at least once, as the broker promises)
//! and says so in its log.

use std::time::Duration;

use redis::{aio::ConnectionManager, Script};
use uuid::Uuid;

/// A live run's claim lapses this long after its worker stopped extending it.
pub const CLAIM_TTL: Duration = Duration::from_secs(10);
/// A run extends its claim this often.
pub const CLAIM_REFRESH: Duration = Duration::from_secs(3);
/// A finished dispatch is remembered this long: longer than any redelivery takes.
const DONE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often a copy looks again at a claim held by another run.
const RECHECK: Duration = Duration::from_millis(250);

/// What a worker may do with a dispatch it received.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Run it: this run holds the claim (or Redis could not be asked).
    Run,
    /// Another run finished it (its report is with the broker): settle without running.
    Done,
}

/// Claims of one worker process.
#[derive(Clone)]
pub struct Claims {
    redis: ConnectionManager,
    prefix: String,
}

/// Extends the claim only while it is still this run's.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Drops the claim only while it is still this run's (a handed-back run frees it at once).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

impl Claims {
    pub fn new(redis: ConnectionManager, prefix: String) -> Self {
        Self { redis, prefix }
    }

    fn key(&self, dispatch_id: Uuid) -> String {
        format!("{}jobs:dispatch:{dispatch_id}", self.prefix)
    }

    /// Claims `dispatch_id` for `run_id`, waiting while another live run holds it.
    pub async fn acquire(&self, dispatch_id: Uuid, run_id: Uuid) -> Claim {
        let key = self.key(dispatch_id);
        let mine = format!("run:{run_id}");
        let mut redis = self.redis.clone();
        let mut waited = false;
        loop {
            let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&key)
                .arg(&mine)
                .arg("NX")
                .arg("PX")
                .arg(CLAIM_TTL.as_millis() as u64)
                .query_async(&mut redis)
                .await;
            let holder: redis::RedisResult<Option<String>> = match taken {
                Ok(Some(_)) => return Claim::Run,
                Ok(None) => redis::cmd("GET").arg(&key).query_async(&mut redis).await,
                Err(err) => Err(err),
            };
            match holder {
                Ok(Some(holder)) if holder.starts_with("done") => return Claim::Done,
                // Held by a live run, or gone since the SET: look again shortly.
                Ok(_) => {
                    if !waited {
                        tracing::info!(%dispatch_id, "another run holds this dispatch; waiting for it");
                        waited = true;
                    }
                    tokio::time::sleep(RECHECK).await;
                }
                Err(err) => {
                    tracing::warn!(%dispatch_id, error = %err, "cannot claim the dispatch; running it (at least once)");
                    return Claim::Run;
                }
            }
        }
    }

    /// Keeps `run_id`'s claim alive until the returned task is aborted.
    pub fn keep_alive(&self, dispatch_id: Uuid, run_id: Uuid) -> tokio::task::JoinHandle<()> {
        let (key, mine) = (self.key(dispatch_id), format!("run:{run_id}"));
        let mut redis = self.redis.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CLAIM_REFRESH).await;
                let extended: redis::RedisResult<i64> = Script::new(EXTEND)
                    .key(&key)
                    .arg(&mine)
                    .arg(CLAIM_TTL.as_millis() as u64)
                    .invoke_async(&mut redis)
                    .await;
                if let Err(err) = extended {
                    tracing::warn!(%dispatch_id, error = %err, "cannot extend the dispatch claim");
                }
            }
        })
    }

    /// Marks the dispatch done: its report is confirmed, so no copy of it runs again.
    pub async fn finish(&self, dispatch_id: Uuid, outcome: &str) {
        let mut redis = self.redis.clone();
        let marked: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.key(dispatch_id))
            .arg(format!("done:{outcome}"))
            .arg("PX")
            .arg(DONE_TTL.as_millis() as u64)
            .query_async(&mut redis)
            .await;
        if let Err(err) = marked {
            tracing::warn!(%dispatch_id, error = %err, "cannot mark the dispatch done; a redelivered copy would run again");
        }
    }

    /// Frees `run_id`'s claim so a copy can run at once (the run was handed back or its report
    /// was not confirmed).
    pub async fn release(&self, dispatch_id: Uuid, run_id: Uuid) {
        let mut redis = self.redis.clone();
        let released: redis::RedisResult<i64> = Script::new(RELEASE)
            .key(self.key(dispatch_id))
            .arg(format!("run:{run_id}"))
            .invoke_async(&mut redis)
            .await;
        if let Err(err) = released {
            tracing::debug!(%dispatch_id, error = %err, "cannot release the dispatch claim; it lapses");
        }
    }
}
