//! What this gateway knows of sessions without asking Redis.
//!
//! A session Redis called live is trusted for `auth.live_session_cache_ms`, but only while the gateway follows
//! the ends user-svc publishes (the subscriber in `revocations` calls [`Known::following`]): an
//! end heard of is refused at once, and losing the subscription forgets every live answer. An
//! answer is kept only if nothing could have been missed while it was asked: each question takes
//! an [`Epoch`] first, and an end heard meanwhile, a lost subscription or [`Known::forget`]
//! (after user-svc changed something through this gateway) makes the answer count for that
//! request alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use uuid::Uuid;

/// Live sessions kept at most; past this, new answers are not kept until old ones lapse.
const MAX_LIVE: usize = 100_000;

/// How long an end heard of is kept (longer than any question to Redis takes).
const ENDED_FOR: Duration = Duration::from_secs(60);

/// Ends kept at most; past this, the oldest are dropped (Redis still knows them).
const MAX_ENDED: usize = 100_000;

/// What the gateway knows of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Redis called it live less than the cache's time ago and no end was heard since.
    Live,
    /// Its end was published.
    Ended,
    /// Ask Redis.
    Unknown,
}

/// The state of what is known when a question to Redis starts; see [`Known::remember`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(Option<u64>);

pub struct Known {
    /// How long a live answer from Redis is trusted.
    live_for: Duration,
    inner: Mutex<Inner>,
    /// Each end heard, for the live streams, which end with their session ([`Known::ends`]).
    ends: broadcast::Sender<Uuid>,
}

/// Ends kept for a stream that has not looked yet; one that falls further behind asks Redis.
const ENDS_BUFFER: usize = 1024;

#[derive(Default)]
struct Inner {
    /// Whether ends are being heard; without it nothing is trusted.
    following: bool,
    /// Moves on whenever an end might have been missed; older answers are not kept.
    epoch: u64,
    live: HashMap<Uuid, Instant>,
    ended: HashMap<Uuid, Instant>,
}

impl Known {
    pub fn new(live_for: Duration) -> Self {
        Self {
            live_for,
            inner: Mutex::default(),
            ends: broadcast::channel(ENDS_BUFFER).0,
        }
    }

    /// The ends heard from now on (a receiver that lags has missed some: ask Redis).
    pub fn ends(&self) -> broadcast::Receiver<Uuid> {
        self.ends.subscribe()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("never poisoned")
    }

    pub fn of(&self, session: Uuid) -> Liveness {
        let inner = self.inner();
        if inner.ended.contains_key(&session) {
            return Liveness::Ended;
        }
        let live = inner.live.get(&session);
        match inner.following && live.is_some_and(|at| at.elapsed() < self.live_for) {
            true => Liveness::Live,
            false => Liveness::Unknown,
        }
    }

    /// Taken before asking Redis about a session.
    pub fn epoch(&self) -> Epoch {
        let inner = self.inner();
        Epoch(inner.following.then_some(inner.epoch))
    }

    /// Keeps Redis's answer that `session` is live, asked since `epoch`, unless an end may have
    /// been missed meanwhile.
    pub fn remember(&self, session: Uuid, epoch: Epoch) {
        let mut inner = self.inner();
        if epoch != Epoch(Some(inner.epoch)) || !inner.following {
            return;
        }
        if inner.ended.contains_key(&session) {
            return;
        }
        if inner.live.len() >= MAX_LIVE {
            let live_for = self.live_for;
            inner.live.retain(|_, at| at.elapsed() < live_for);
            if inner.live.len() >= MAX_LIVE {
                return;
            }
        }
        inner.live.insert(session, Instant::now());
    }

    /// Sessions whose end user-svc published.
    pub fn ended(&self, sessions: impl IntoIterator<Item = Uuid>) {
        let mut inner = self.inner();
        for session in sessions {
            inner.live.remove(&session);
            if inner.ended.len() >= MAX_ENDED {
                inner.ended.retain(|_, at| at.elapsed() < ENDED_FOR);
            }
            if inner.ended.len() >= MAX_ENDED {
                // Dropping ends is safe only if no answer asked before them is kept.
                inner.ended.clear();
                inner.epoch += 1;
                inner.live.clear();
            }
            inner.ended.insert(session, Instant::now());
            let _ = self.ends.send(session); // no stream open: nobody to tell
        }
    }

    /// Forgets every live answer: an end may have been missed (a message that could not be
    /// read), or user-svc changed something through this gateway (a logout, a deactivation), so
    /// the next requests ask Redis, which already knows.
    pub fn forget(&self) {
        let mut inner = self.inner();
        inner.epoch += 1;
        inner.live.clear();
    }

    /// Whether ends are being heard: on at each (re)subscription, off when it is lost. Either
    /// way, what was known before is forgotten, since ends may have been missed in between.
    pub fn following(&self, following: bool) {
        let mut inner = self.inner();
        inner.following = following;
        inner.epoch += 1;
        inner.live.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn following() -> Known {
        let known = Known::new(SECOND);
        known.following(true);
        known
    }

    #[test]
    fn nothing_is_trusted_unless_ends_are_followed() {
        let known = Known::new(SECOND);
        let session = Uuid::new_v4();
        known.remember(session, known.epoch());
        assert_eq!(known.of(session), Liveness::Unknown);
        known.following(true);
        known.remember(session, known.epoch());
        assert_eq!(known.of(session), Liveness::Live);
        known.following(false);
        assert_eq!(known.of(session), Liveness::Unknown);
    }

    #[test]
    fn an_end_heard_while_redis_was_asked_wins_over_the_answer() {
        let known = following();
        let session = Uuid::new_v4();
        let epoch = known.epoch();
        known.ended([session]);
        known.remember(session, epoch);
        assert_eq!(known.of(session), Liveness::Ended);
    }

    #[test]
    fn an_answer_asked_before_a_forget_or_a_resubscription_is_not_kept() {
        let known = following();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let epoch = known.epoch();
        known.forget();
        known.remember(a, epoch);
        assert_eq!(known.of(a), Liveness::Unknown);
        let epoch = known.epoch();
        known.following(false);
        known.following(true);
        known.remember(b, epoch);
        assert_eq!(known.of(b), Liveness::Unknown);
    }

    #[test]
    fn an_end_is_refused_at_once_and_other_sessions_stay_live() {
        let known = following();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        known.remember(a, known.epoch());
        known.remember(b, known.epoch());
        known.ended([a]);
        assert_eq!(known.of(a), Liveness::Ended);
        assert_eq!(known.of(b), Liveness::Live);
        known.forget();
        assert_eq!(known.of(b), Liveness::Unknown);
    }
}
