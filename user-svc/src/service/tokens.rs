//! Personal access tokens: made (shown once, kept as a hash, mirrored as a live session for the
//! gateway), listed, revoked at once (their mirror deleted and the end published to every
//! gateway), and verified for the gateway.

use chrono::Utc;
use shared::access_tokens::Grant;
use shared::identity::Identity;
use uuid::Uuid;

use crate::{
    domain::tokens::{self, CreatedToken, NewToken, TokenInfo, MAX_LIVE_PER_USER},
    error::UserError,
    infra::mirror,
    store, AppState,
};

/// The most tokens one listing shows (a user has at most [`MAX_LIVE_PER_USER`] live ones).
const LIST_LIMIT: i64 = 1000;

/// Makes a token for the caller.
pub async fn create(
    state: &AppState,
    identity: &Identity,
    new: NewToken,
) -> Result<CreatedToken, UserError> {
    let mut tx = state.pool.begin().await?;
    let role = store::tokens::lock_owner(&mut tx, identity.user_id)
        .await?
        .ok_or(UserError::NotFound("user"))?;
    let checked = tokens::check(new, role, Utc::now())?;
    if store::tokens::count_live(&mut tx, identity.user_id).await? >= MAX_LIVE_PER_USER {
        return Err(UserError::conflict(
            "too_many_tokens",
            format!("at most {MAX_LIVE_PER_USER} live tokens per user; revoke one first"),
        ));
    }
    let (secret, _) = crate::infra::signing::opaque_token();
    let token = format!("{}{secret}", shared::access_tokens::PREFIX);
    let hash = shared::access_tokens::hash(&token);
    let id = Uuid::now_v7();
    let info = store::tokens::insert(&mut tx, id, identity.user_id, &checked, &hash).await?;
    // Live for the gateway before anyone holds it; a failed commit leaves a key no token has.
    mirror::put(state, id, identity.user_id, info.expires_at).await?;
    tx.commit().await?;
    tracing::info!(token_id = %id, user_id = %identity.user_id, "personal access token created");
    Ok(CreatedToken { token, info })
}

/// The unrevoked tokens of `user_id` (everyone's without one).
pub async fn list(state: &AppState, user_id: Option<Uuid>) -> Result<Vec<TokenInfo>, UserError> {
    Ok(store::tokens::list(&state.pool, user_id, LIST_LIMIT).await?)
}

/// Revokes token `id` of `owner` (any user's without one): refused from the next request on,
/// on every gateway.
pub async fn revoke(state: &AppState, id: Uuid, owner: Option<Uuid>) -> Result<(), UserError> {
    let mut tx = state.pool.begin().await?;
    let reason = match owner {
        Some(_) => "revoked",
        None => "revoked by an admin",
    };
    if !store::tokens::revoke(&mut tx, id, owner, reason).await? {
        return Err(UserError::NotFound("token"));
    }
    tx.commit().await?;
    tracing::info!(token_id = %id, "personal access token revoked");
    mirror::remove(state, &[id]).await
}

/// Revokes every token of `user_id` (deactivated or role changed: their scopes were granted
/// under the old role), at once on every gateway.
pub async fn revoke_all(state: &AppState, user_id: Uuid, reason: &str) -> Result<(), UserError> {
    let mut tx = state.pool.begin().await?;
    let ids = store::tokens::revoke_all_of_user(&mut tx, user_id, reason).await?;
    tx.commit().await?;
    mirror::remove(state, &ids).await
}

/// Whom the token with SHA-256 `token_hash` (hex) stands for, if it is live; records its use
/// and writes its mirror again (a Redis that lost it heals; one that is down does not stop it). The row stays locked until the
/// mirror is written, so a revocation meanwhile deletes the mirror after this writes it.
pub async fn verify(state: &AppState, token_hash: &str) -> Result<Grant, UserError> {
    let hash = hex::decode(token_hash)
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or_else(|| UserError::Malformed {
            code: "invalid_token_hash",
            detail: "token_hash must be 64 hex digits".into(),
        })?;
    let mut tx = state.pool.begin().await?;
    let live = store::tokens::use_live(&mut tx, &hash)
        .await?
        .ok_or(UserError::NotFound("token"))?;
    // Without Redis the gateway asks user-svc whether the token is live (as for sessions), so
    // a mirror that cannot be written now is written by a later answer.
    if let Err(err) = mirror::put(state, live.id, live.user_id, live.expires_at).await {
        tracing::warn!(error = %err, token_id = %live.id, "a token's mirror is not written");
    }
    tx.commit().await?;
    let scopes = tokens::effective(&live.scopes, live.role);
    Ok(Grant {
        token_id: live.id,
        user_id: live.user_id,
        role: tokens::acting_role(live.role, scopes),
        scopes,
    })
}
