//! Signing in: login (throttled, constant-time for unknown emails) and refresh-token rotation
//! with reuse detection.

use uuid::Uuid;

use crate::{
    domain::session::{judge, TokenResponse, Verdict},
    error::UserError,
    infra::{hashing, signing, throttle},
    service::sessions::{self, Issued},
    store, AppState,
};

fn invalid_credentials() -> UserError {
    UserError::unauthorized("invalid_credentials", "email or password is wrong")
}

/// Checks `email` and `password` from `ip` and opens a session.
pub async fn login(
    state: &AppState,
    ip: &str,
    email: &str,
    password: String,
) -> Result<TokenResponse, UserError> {
    let email = email.trim();
    if email.len() > 254 || password.len() > 1024 {
        return Err(invalid_credentials());
    }
    throttle::admit(state, email, ip).await?;
    let found = store::users::credentials(&state.pool, email).await?;
    // An unknown email costs the same hash verification as a wrong password.
    let stored = found
        .as_ref()
        .map_or(hashing::DUMMY_HASH.to_string(), |c| c.password_hash.clone());
    let verified = hashing::verify(password.clone(), stored).await?;
    let user = match found {
        Some(user) if user.active && verified.ok => user,
        _ => return Err(invalid_credentials()),
    };
    throttle::succeeded(state, email, ip).await;
    if verified.needs_rehash {
        let rehashed = hashing::hash(password).await?;
        store::users::set_password_hash(&state.pool, user.id, &rehashed, false).await?;
        tracing::info!(user_id = %user.id, "password rehashed with current parameters");
    }
    let expires_at = sessions::expiry(state);
    let mut tx = state.pool.begin().await?;
    let issued = sessions::open(&mut tx, user.id, expires_at).await?;
    tx.commit().await?;
    sessions::hand_out(state, user.id, user.role, issued, expires_at).await
}

/// Spends `token` and hands out the next one of its family with a new access token.
pub async fn refresh(state: &AppState, token: &str) -> Result<TokenResponse, UserError> {
    let invalid = || UserError::unauthorized("unauthorized", "invalid or expired refresh token");
    if token.len() > 128 {
        return Err(invalid());
    }
    let hash = signing::token_hash(token);
    let mut tx = state.pool.begin().await?;
    let found = store::sessions::find_refresh(&mut tx, &hash).await?;
    let verdict = judge(found.as_ref().map(|f| &f.presented), chrono::Utc::now());
    match (verdict, found) {
        (Verdict::Spend, Some(found)) => {
            store::sessions::spend_refresh(&mut tx, &hash).await?;
            let refresh_token = sessions::issue_refresh(&mut tx, found.session_id).await?;
            tx.commit().await?;
            let issued = Issued {
                session_id: found.session_id,
                refresh_token,
            };
            let expires_at = found.presented.expires_at;
            sessions::hand_out(state, found.user_id, found.role, issued, expires_at).await
        }
        (Verdict::Reused { revoke }, Some(found)) => {
            let session_id = found.session_id;
            if revoke {
                store::sessions::revoke(&mut tx, &[session_id], "refresh token reused").await?;
            }
            tx.commit().await?;
            reused(state, session_id).await
        }
        _ => Err(invalid()),
    }
}

/// A spent refresh token came back: its session is ended, in Redis too.
async fn reused(state: &AppState, session_id: Uuid) -> Result<TokenResponse, UserError> {
    tracing::warn!(%session_id, "a spent refresh token was presented; session revoked");
    crate::infra::mirror::remove(state, &[session_id]).await?;
    Err(UserError::unauthorized(
        "refresh_token_reused",
        "this refresh token was already used; the session has been ended",
    ))
}
