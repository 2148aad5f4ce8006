//! Sessions and refresh tokens.
//!
//! Login opens a session (its id is the `sid` of every access token issued in it) and hands out
//! an opaque refresh token, stored only as its SHA-256. Each refresh spends the token and returns
//! a new one; presenting a spent token again means it leaked, so the whole session (the token
//! family) is revoked. Live sessions are mirrored in Redis ([`shared::sessions`]) for the
//! gateway; revoking deletes the mirror, which ends the session's access tokens at once.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use shared::ApiError;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::AppState;

/// A new opaque refresh token and the hash that is stored.
fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A session just opened or refreshed.
pub struct Issued {
    pub session_id: Uuid,
    pub refresh_token: String,
}

/// Opens a session for `user_id` inside `tx`; call [`mirror`] after commit.
pub async fn open(
    tx: &mut PgConnection,
    user_id: Uuid,
    ttl_secs: u64,
) -> Result<Issued, sqlx::Error> {
    let session_id = Uuid::now_v7();
    let expires_at = Utc::now() + Duration::seconds(ttl_secs as i64);
    sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(session_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    let refresh_token = issue_refresh(tx, session_id).await?;
    Ok(Issued {
        session_id,
        refresh_token,
    })
}

async fn issue_refresh(tx: &mut PgConnection, session_id: Uuid) -> Result<String, sqlx::Error> {
    let (token, hash) = new_refresh_token();
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(hash)
        .bind(session_id)
        .execute(tx)
        .await?;
    Ok(token)
}

/// Writes the Redis mirror of a live session. Without it the gateway refuses the session's
/// tokens, so a failure here fails the request (503).
pub async fn mirror(
    state: &AppState,
    session_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let ttl = (expires_at - Utc::now()).num_seconds().max(1) as u64;
    shared::sessions::put(
        &state.redis,
        &state.config.redis.key_prefix,
        session_id,
        user_id,
        ttl,
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "cannot record the session in Redis");
        ApiError::unavailable("redis")
    })
}

/// What a refresh found.
pub enum Refreshed {
    Ok {
        user_id: Uuid,
        role: String,
        issued: Issued,
        expires_at: DateTime<Utc>,
    },
    /// Unknown, expired, revoked, or the account is inactive.
    Invalid,
    /// A spent token came back: its session has been revoked.
    Reused { session_id: Uuid },
}

/// Spends `token` and issues the next one of its family, inside `tx`.
pub async fn refresh(tx: &mut PgConnection, token: &str) -> Result<Refreshed, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.session_id, t.used_at, s.user_id, s.expires_at, s.revoked_at, u.role, u.active
           FROM refresh_tokens t
           JOIN sessions s ON s.id = t.session_id
           JOIN users u ON u.id = s.user_id
          WHERE t.token_hash = $1
            FOR UPDATE OF t, s",
    )
    .bind(hash_token(token))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Refreshed::Invalid);
    };
    let session_id: Uuid = row.get("session_id");
    let used_at: Option<DateTime<Utc>> = row.get("used_at");
    let expires_at: DateTime<Utc> = row.get("expires_at");
    let revoked_at: Option<DateTime<Utc>> = row.get("revoked_at");
    let active: bool = row.get("active");
    if used_at.is_some() {
        if revoked_at.is_none() {
            revoke(tx, &[session_id], "refresh token reused").await?;
        }
        return Ok(Refreshed::Reused { session_id });
    }
    if revoked_at.is_some() || expires_at <= Utc::now() || !active {
        return Ok(Refreshed::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(hash_token(token))
        .execute(&mut *tx)
        .await?;
    let refresh_token = issue_refresh(tx, session_id).await?;
    Ok(Refreshed::Ok {
        user_id: row.get("user_id"),
        role: row.get("role"),
        issued: Issued {
            session_id,
            refresh_token,
        },
        expires_at,
    })
}

/// Marks sessions revoked inside `tx`; call [`unmirror`] after commit.
pub async fn revoke(
    tx: &mut PgConnection,
    session_ids: &[Uuid],
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
          WHERE id = ANY($1) AND revoked_at IS NULL",
    )
    .bind(session_ids)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}

/// The live sessions of `user_id`, except `keep`.
pub async fn live_sessions(
    tx: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM sessions
          WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .fetch_all(tx)
    .await
}

/// Deletes the Redis mirror of ended sessions, so their access tokens stop working now.
pub async fn unmirror(state: &AppState, session_ids: &[Uuid]) -> Result<(), ApiError> {
    shared::sessions::remove(&state.redis, &state.config.redis.key_prefix, session_ids)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot remove ended sessions from Redis");
            ApiError::unavailable("redis")
        })
}

/// Which of a user's sessions to end.
pub enum Ending {
    One(Uuid),
    /// Every live session except the one given (if any).
    AllBut(Option<Uuid>),
}

/// Revokes sessions in the database and in Redis, so their tokens stop working now.
pub async fn end_sessions(
    state: &AppState,
    user_id: Uuid,
    ending: Ending,
    reason: &str,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let ids = match ending {
        Ending::One(id) => vec![id],
        Ending::AllBut(keep) => live_sessions(&mut tx, user_id, keep).await?,
    };
    revoke(&mut tx, &ids, reason).await?;
    tx.commit().await?;
    unmirror(state, &ids).await
}
