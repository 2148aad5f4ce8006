//! Whether a session is live while Redis (the sessions' mirror) cannot be asked: user-svc's
//! answer from PostgreSQL, remembered for a few seconds so an outage does not send every request
//! on to user-svc. A session ended before Redis went away stays ended; with user-svc unreachable
//! too, the request is refused with 503.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shared::{
    internal::Caller,
    sessions::{Live, LiveQuery, LIVE_PATH},
    ApiError,
};
use uuid::Uuid;

use crate::AppState;

/// How long an answer is used: a session ended meanwhile is refused at most this much later.
const REMEMBER: Duration = Duration::from_secs(5);

/// Answers kept at most; past this the oldest half is forgotten.
const MAX_REMEMBERED: usize = 10_000;

/// user-svc's recent answers.
#[derive(Default)]
pub struct Fallback {
    answers: Mutex<HashMap<Uuid, (bool, Instant)>>,
}

impl Fallback {
    fn remembered(&self, session: Uuid) -> Option<bool> {
        let answers = self.answers.lock().expect("never poisoned");
        answers
            .get(&session)
            .filter(|(_, at)| at.elapsed() < REMEMBER)
            .map(|(live, _)| *live)
    }

    fn remember(&self, session: Uuid, live: bool) {
        let mut answers = self.answers.lock().expect("never poisoned");
        if answers.len() >= MAX_REMEMBERED {
            answers.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        }
        if answers.len() < MAX_REMEMBERED {
            answers.insert(session, (live, Instant::now()));
        }
    }
}

/// The refusal of a request whose session has ended.
pub fn ended() -> ApiError {
    ApiError::unauthorized("this session has ended; log in again")
}

/// For a request with `session` while Redis cannot be asked: 401 if user-svc says it has
/// ended, 503 if user-svc cannot say either.
pub async fn check_without_redis(state: &AppState, session: Option<Uuid>) -> Result<(), ApiError> {
    match session {
        Some(session) if !is_live(state, session).await? => Err(ended()),
        _ => Ok(()),
    }
}

/// Whether `session` is live, asked of user-svc (or its answer of the last few seconds).
async fn is_live(state: &AppState, session: Uuid) -> Result<bool, ApiError> {
    if let Some(live) = state.sessions.remembered(session) {
        return Ok(live);
    }
    let user_svc = state.user_svc();
    let caller = Caller::anonymous(crate::SERVICE, None);
    let question = LiveQuery {
        session_ids: vec![session],
    };
    let asked = user_svc.post::<_, Live>(LIVE_PATH, &caller, &question, Duration::from_secs(2));
    let answer = asked.await.map_err(|e| {
        tracing::warn!(error = %e, "neither Redis nor user-svc can say whether a session is live");
        ApiError::unavailable("redis (sessions)")
    })?;
    let live = answer.live.contains(&session);
    state.sessions.remember(session, live);
    metrics::counter!("taskmesh_session_check_fallback_total").increment(1);
    Ok(live)
}
