//! Signing keys: loaded at start (one is created when none is active), rotated and retired by
//! admins, reloaded when other replicas change them.

use shared::seal::AtRest;

use crate::{
    domain::keys::{check_retirable, KeyList},
    error::UserError,
    infra::signing::{self, Keys},
    store::{self, keys::ActiveKey},
    AppState,
};

/// Creates a new signing key, its private half sealed; it signs from the next [`load`] on.
async fn create(pool: &sqlx::PgPool, at_rest: &AtRest) -> Result<String, UserError> {
    let (kid, pem, public) = signing::generate()?;
    store::keys::insert(pool, &kid, &at_rest.seal(pem.as_bytes()), &public).await?;
    tracing::info!(%kid, "created a token signing key");
    Ok(kid)
}

/// The active keys, their private halves opened: the newest signs, all are published. A key
/// no sealing key here opens (the sealing key was lost) is left out, logged: tokens it signed
/// are refused, and with none left a new key is made.
async fn active(pool: &sqlx::PgPool, at_rest: &AtRest) -> Result<Vec<ActiveKey>, UserError> {
    let mut active = store::keys::active(pool).await?;
    active.retain_mut(|key| match at_rest.open_text_or_clear(&key.private_pem) {
        Ok(pem) => {
            key.private_pem = pem;
            true
        }
        Err(err) => {
            tracing::error!(kid = %key.kid, error = %err, "a signing key cannot be opened; not used");
            false
        }
    });
    Ok(active)
}

/// The active keys: the newest signs, all are published.
pub async fn load(pool: &sqlx::PgPool, at_rest: &AtRest) -> Result<Keys, UserError> {
    Ok(Keys::from_active(&active(pool, at_rest).await?)?)
}

/// Loads the active keys, creating one when there is none.
pub async fn load_or_create(pool: &sqlx::PgPool, at_rest: &AtRest) -> Result<Keys, UserError> {
    let keys = active(pool, at_rest).await?;
    if keys.is_empty() {
        create(pool, at_rest).await?;
        return load(pool, at_rest).await;
    }
    Ok(Keys::from_active(&keys)?)
}

/// Picks up keys other replicas rotated or retired.
pub async fn reload(state: &AppState) -> Result<(), UserError> {
    let fresh = load(&state.pool, &state.at_rest).await?;
    *state.keys.write().await = fresh;
    Ok(())
}

pub async fn list(state: &AppState) -> Result<KeyList, UserError> {
    let items = store::keys::list(&state.pool).await?;
    Ok(KeyList {
        signing: state.keys.read().await.kid.clone(),
        items,
    })
}

/// A new key signs from now on; the old stays published.
pub async fn rotate(state: &AppState) -> Result<KeyList, UserError> {
    create(&state.pool, &state.at_rest).await?;
    reload(state).await?;
    list(state).await
}

/// Retires a key that no longer signs: tokens it signed are refused.
pub async fn retire(state: &AppState, kid: &str) -> Result<KeyList, UserError> {
    let mut tx = state.pool.begin().await?;
    let active = store::keys::lock_active(&mut tx).await?;
    check_retirable(&active, kid)?;
    store::keys::retire(&mut tx, kid).await?;
    tx.commit().await?;
    reload(state).await?;
    list(state).await
}
