//! Whether a request may go on: its token, its session and its rate limit.
//!
//! The session and the rate limit need Redis, asked as seldom as the guarantees allow: a session
//! Redis called live less than a second ago while this gateway follows the ends user-svc
//! publishes ([`crate::sessions::known`]) is not asked about again, and requests are admitted
//! from reservations made in batches ([`crate::ratelimit::lease`]). When either needs Redis, one
//! round trip answers both. Without Redis, requests are not counted and user-svc says whether the
//! session is live ([`crate::sessions::fallback`]).

use axum::http::{header, HeaderMap, StatusCode};
use shared::{identity::Identity, internal::Caller, scopes::Scopes, ApiError};
use uuid::Uuid;

use crate::auth::Verified;
use crate::ratelimit::{self, lease::Want, Decision, Outcome, Policy};
use crate::routes::Route;
use crate::scopes::Need;
use crate::sessions::{self, known::Liveness};
use crate::{tokens, AppState};

/// Checks limits and identity for `route`, and that a personal access token has what the
/// request `needs`. Returns the subject the request counts for and the caller the services are
/// told of (in the assertion the proxy writes).
pub(crate) async fn admit(
    state: &AppState,
    route: Route,
    needs: Need,
    headers: &HeaderMap,
    ip: &str,
    decision: &mut Option<Decision>,
) -> Result<(String, Caller), ApiError> {
    let limits = &state.config.rate_limit;
    let auth = Policy {
        name: "auth",
        limit: limits.auth_requests,
        window_secs: limits.window_secs,
    };
    if route.public {
        let policy = match route.signed {
            true => Policy {
                name: "signed",
                limit: limits.api_requests,
                window_secs: limits.window_secs,
            },
            false => auth,
        };
        let source = shared::identity::source_of(ip);
        limit(state, policy, &source, None, decision).await?;
        let caller = Caller::anonymous(crate::SERVICE, Some(ip.to_string()));
        Ok((format!("ip:{source}"), caller))
    } else {
        let token = bearer(headers)
            .ok_or_else(|| ApiError::unauthorized("a bearer access token is required"))?;
        let (verified, scopes) = match shared::access_tokens::is_token(token) {
            true => {
                // A token not remembered counts as a guess from its client's address.
                let source = shared::identity::source_of(ip);
                let guess = async { limit(state, auth, &source, None, &mut None).await };
                let grant = tokens::grant(state, token, guess).await?;
                check_need(needs, grant.scopes)?;
                let verified = Verified {
                    user_id: grant.user_id,
                    role: grant.role,
                    session_id: grant.token_id,
                };
                (verified, Some(grant.scopes))
            }
            false => (state.verifier.verify(token).await?, None),
        };
        let policy = Policy {
            name: "api",
            limit: limits.api_requests,
            window_secs: limits.window_secs,
        };
        let user = verified.user_id.to_string();
        let admitted = limit(state, policy, &user, Some(verified.session_id), decision).await;
        if let (Err(err), Some(_)) = (&admitted, scopes) {
            if err.status == StatusCode::UNAUTHORIZED {
                // Revoked, or a Redis that lost its key: the next request asks user-svc again.
                state.tokens.forget(token);
                return Err(tokens::refused());
            }
        }
        admitted?;
        let identity = Identity {
            user_id: verified.user_id,
            role: verified.role,
            session_id: Some(verified.session_id),
            scopes,
        };
        let caller = Caller::user(crate::SERVICE, identity, Some(ip.to_string()));
        Ok((format!("user:{user}"), caller))
    }
}

/// `Ok` if a token of `scopes` may make a request that `needs` this.
fn check_need(needs: Need, scopes: Scopes) -> Result<(), ApiError> {
    match needs {
        Need::Any => Ok(()),
        Need::Scope(scope) if scopes.contains(scope) => Ok(()),
        Need::Scope(scope) => Err(shared::scopes::insufficient(scope)),
        Need::Both(one, other) => {
            check_need(Need::Scope(one), scopes)?;
            check_need(Need::Scope(other), scopes)
        }
        Need::Session => Err(shared::scopes::session_only()),
    }
}

/// What a request asks Redis.
#[derive(Clone, Copy)]
enum Ask {
    /// Whether its session is live; it was admitted from the lease.
    Session(Decision),
    /// A reservation (and whether its session is live, if not known).
    Reserve(Want),
}

/// Admits one request of `subject` under `policy` (429 past the limit); with `session`, only if
/// it is live (401 if it has ended).
async fn limit(
    state: &AppState,
    policy: Policy,
    subject: &str,
    session: Option<Uuid>,
    decision: &mut Option<Decision>,
) -> Result<(), ApiError> {
    let prefix = &state.config.redis.key_prefix;
    let key = format!("{prefix}ratelimit:{}:{subject}", policy.name);
    let liveness = session.map(|s| (s, state.known.of(s)));
    let unknown = match liveness {
        Some((_, Liveness::Ended)) => return Err(sessions::ended()),
        Some((session, Liveness::Unknown)) => Some(session),
        _ => None,
    };
    let leased = state.leases.take(&key, policy);
    if let (Some(admitted), None) = (leased, unknown) {
        *decision = Some(admitted);
        return Ok(());
    }
    // With a request admitted from the lease, Redis is asked about the session only.
    let ask = match leased {
        Some(admitted) => Ask::Session(admitted),
        None => Ask::Reserve(state.leases.want(&key, policy)),
    };
    let epoch = state.known.epoch();
    let session_key = unknown.map(|s| shared::sessions::key(prefix, s));
    let n = match ask {
        Ask::Session(_) => 0,
        Ask::Reserve(want) => want.n,
    };
    let outcome = ratelimit::reserve(&state.redis, &key, policy, n, session_key.as_deref());
    let outcome = outcome.await;
    if let (Ask::Reserve(want), Outcome::SessionEnded | Outcome::Unavailable) = (ask, outcome) {
        state.leases.abandon(&key, want);
    }
    let admitted = match (outcome, ask) {
        (Outcome::SessionEnded, _) => return Err(sessions::ended()),
        (Outcome::Unavailable, _) => {
            *decision = leased;
            return sessions::check_without_redis(state, unknown).await;
        }
        (Outcome::Reserved(_), Ask::Session(admitted)) => admitted,
        (Outcome::Reserved(grant), Ask::Reserve(want)) => {
            state.leases.reserved(&key, policy, want, grant)
        }
    };
    if let Some(session) = unknown {
        state.known.remember(session, epoch);
    }
    *decision = Some(admitted);
    if admitted.allowed {
        return Ok(());
    }
    let refusal = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "more than {} requests in {} seconds",
            policy.limit, policy.window_secs
        ),
    );
    Err(refusal.with_retry_after(admitted.reset_secs))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
