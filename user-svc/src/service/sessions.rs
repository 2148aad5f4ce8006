//! Opening and ending sessions: in PostgreSQL (the source of truth) and in the Redis mirror.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::session::{Ending, TokenResponse},
    error::UserError,
    infra::{mirror, signing},
    store, AppState,
};

/// A session just opened or refreshed.
pub struct Issued {
    pub session_id: Uuid,
    pub refresh_token: String,
}

/// Opens a session for `user_id` inside `tx`; mirror it after commit.
pub async fn open(
    tx: &mut PgConnection,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<Issued, sqlx::Error> {
    let session_id = Uuid::now_v7();
    store::sessions::insert_session(tx, session_id, user_id, expires_at).await?;
    let refresh_token = issue_refresh(tx, session_id).await?;
    Ok(Issued {
        session_id,
        refresh_token,
    })
}

/// The next refresh token of a session's family.
pub async fn issue_refresh(tx: &mut PgConnection, session_id: Uuid) -> Result<String, sqlx::Error> {
    let (token, hash) = signing::opaque_token();
    store::sessions::insert_refresh(tx, &hash, session_id).await?;
    Ok(token)
}

/// When a session opened now expires.
pub fn expiry(state: &AppState) -> DateTime<Utc> {
    Utc::now() + Duration::seconds(state.config.auth.session_ttl_secs as i64)
}

/// Mirrors a committed session in Redis and signs its access token.
pub async fn hand_out(
    state: &AppState,
    user_id: Uuid,
    role: shared::identity::Role,
    issued: Issued,
    expires_at: DateTime<Utc>,
) -> Result<TokenResponse, UserError> {
    mirror::put(state, issued.session_id, user_id, expires_at).await?;
    let auth = &state.config.auth;
    let access_token = {
        let keys = state.keys.read().await;
        signing::access_token(&keys, auth, user_id, role, issued.session_id)?
    };
    Ok(TokenResponse {
        access_token,
        refresh_token: issued.refresh_token,
        token_type: "Bearer".into(),
        expires_in: auth.access_token_ttl_secs,
    })
}

/// Revokes sessions in the database and in Redis, so their tokens stop working now.
pub async fn end(
    state: &AppState,
    user_id: Uuid,
    ending: Ending,
    reason: &str,
) -> Result<(), UserError> {
    let mut tx = state.pool.begin().await?;
    let ids = match ending {
        Ending::One(id) => vec![id],
        Ending::AllBut(keep) => store::sessions::live_of_user(&mut tx, user_id, keep).await?,
    };
    store::sessions::revoke(&mut tx, &ids, reason).await?;
    tx.commit().await?;
    mirror::remove(state, &ids).await
}

/// The live ones among `session_ids`, for the gateway while Redis cannot be asked.
pub async fn live_among(state: &AppState, session_ids: &[Uuid]) -> Result<Vec<Uuid>, UserError> {
    if session_ids.len() > shared::sessions::MAX_LIVE_QUERY {
        return Err(UserError::Malformed {
            code: "too_many_sessions",
            detail: format!(
                "at most {} sessions per question",
                shared::sessions::MAX_LIVE_QUERY
            ),
        });
    }
    Ok(store::sessions::live_among(&state.pool, session_ids).await?)
}
