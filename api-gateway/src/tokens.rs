//! Personal access tokens at the gateway: whom a `tmk_…` bearer stands for, asked of user-svc
//! (which records the use) and remembered for [`RECHECK`]. Whether it is still live is not
//! remembered: its id is checked on every request like a session's ([`crate::admission`]), so a
//! revocation is refused at once. A token not remembered counts against its client address's
//! `auth` limit before user-svc is asked, so guessing tokens costs what guessing passwords does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shared::{
    access_tokens::{self, Grant, TokenQuery, VERIFY_PATH},
    calls::CallError,
    internal::Caller,
    ApiError,
};

use crate::AppState;

/// How long user-svc's answer for a token is used (its role and scopes; its use is recorded
/// this often at most).
pub const RECHECK: Duration = Duration::from_secs(60);

/// Tokens remembered at most; past it, the stale ones are dropped, then new answers not kept.
const MAX_REMEMBERED: usize = 10_000;

/// user-svc's recent answers, by the token's hash.
#[derive(Default)]
pub struct Tokens {
    answers: Mutex<HashMap<[u8; 32], (Grant, Instant)>>,
}

impl Tokens {
    fn remembered(&self, hash: &[u8; 32]) -> Option<Grant> {
        let answers = self.answers.lock().expect("never poisoned");
        answers
            .get(hash)
            .filter(|(_, at)| at.elapsed() < RECHECK)
            .map(|(grant, _)| grant.clone())
    }

    fn remember(&self, hash: [u8; 32], grant: Grant) {
        let mut answers = self.answers.lock().expect("never poisoned");
        if answers.len() >= MAX_REMEMBERED {
            answers.retain(|_, (_, at)| at.elapsed() < RECHECK);
        }
        if answers.len() < MAX_REMEMBERED {
            answers.insert(hash, (grant, Instant::now()));
        }
    }

    /// Forgets `token`'s answer: its session key was gone (revoked, or a Redis that lost it),
    /// so the next request asks user-svc again, which writes the key again if it is live.
    pub fn forget(&self, token: &str) {
        let hash = access_tokens::hash(token);
        self.answers.lock().expect("never poisoned").remove(&hash);
    }
}

/// The refusal of a token that is not (or no longer) live.
pub fn refused() -> ApiError {
    ApiError::unauthorized("invalid, expired or revoked personal access token")
}

/// Whom `token` stands for; 401 if it is not live, 503 if user-svc cannot say.
/// `count_guess` is called before user-svc is asked about a token not remembered.
pub async fn grant(
    state: &AppState,
    token: &str,
    count_guess: impl std::future::Future<Output = Result<(), ApiError>>,
) -> Result<Grant, ApiError> {
    let hash = access_tokens::hash(token);
    if let Some(grant) = state.tokens.remembered(&hash) {
        return Ok(grant);
    }
    if token.len() != access_tokens::LENGTH {
        return Err(refused());
    }
    count_guess.await?;
    let user_svc = state.user_svc();
    let caller = Caller::anonymous(crate::SERVICE, None);
    let question = TokenQuery {
        token_hash: hex::encode(hash),
    };
    let asked = user_svc.post::<_, Grant>(VERIFY_PATH, &caller, &question, Duration::from_secs(5));
    let grant = match asked.await {
        Ok(grant) => grant,
        Err(CallError::NotFound) => return Err(refused()),
        Err(err) => {
            tracing::warn!(error = %err, "user-svc cannot say whom a token stands for");
            return Err(ApiError::unavailable("user-svc"));
        }
    };
    state.tokens.remember(hash, grant.clone());
    Ok(grant)
}
