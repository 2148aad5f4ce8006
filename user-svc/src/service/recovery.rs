//! Password reset by email: anyone asks with an address (the answer is the same whether an
//! account has it, so addresses do not leak); the account, if active, is mailed a one-time link
//! valid for an hour, at most one a minute. Opening it sets a new password, verifies the
//! address (the link reached it) and ends every session.

use chrono::{Duration, Utc};
use shared::{
    events::{AccountMail, CloudEvent, VerificationMailDue},
    outbox,
};

use crate::{
    domain::{password, session::Ending},
    error::UserError,
    infra::{hashing, signing},
    service::{sessions, verification::RESEND_AFTER},
    store, AppState, SERVICE,
};

/// How long a reset link works.
pub const RESET_TTL: Duration = Duration::hours(1);

/// Mails `email`'s active account a reset link, unless one went less than a minute ago. Says
/// nothing of whether the account exists.
pub async fn request(state: &AppState, email: &str) -> Result<(), UserError> {
    if email.is_empty() || email.len() > 320 {
        return Ok(());
    }
    let mut tx = state.pool.begin().await?;
    let Some(user) = store::users::lock_by_email(&mut tx, email).await? else {
        return Ok(());
    };
    if !user.active {
        return Ok(());
    }
    let (token, hash) = signing::opaque_token();
    let now = Utc::now();
    let expires_at = now + RESET_TTL;
    if !store::resets::replace(&mut tx, user.id, &hash, expires_at, now - RESEND_AFTER).await? {
        return Ok(());
    }
    let command = VerificationMailDue {
        user_id: user.id,
        email: user.email.clone(),
        token,
        expires_at,
        purpose: AccountMail::PasswordReset,
    };
    outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, command)).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password reset mailed");
    Ok(())
}

fn invalid_link() -> UserError {
    UserError::invalid(
        "invalid_token",
        "this reset link does not work: it was used, replaced by a newer one, or cut short",
    )
}

/// Sets `new_password` for the account a reset link was mailed to. A link works once (an
/// expired one is used up too); a password the policy refuses keeps the link.
pub async fn reset(state: &AppState, token: &str, new_password: String) -> Result<(), UserError> {
    if token.is_empty() || token.len() > 128 {
        return Err(invalid_link());
    }
    let mut tx = state.pool.begin().await?;
    let (user_id, expires_at) = store::resets::take(&mut tx, &signing::token_hash(token))
        .await?
        .ok_or_else(invalid_link)?;
    if expires_at <= Utc::now() {
        tx.commit().await?;
        return Err(UserError::invalid(
            "token_expired",
            "this reset link has expired; ask for a new one",
        ));
    }
    let user = store::users::lock(&mut tx, user_id)
        .await?
        .filter(|u| u.active)
        .ok_or_else(invalid_link)?;
    password::check_policy(&new_password, &user.email)?;
    let hash = hashing::hash(new_password).await?;
    store::users::set_password_hash(&mut *tx, user.id, &hash, true).await?;
    if !user.email_verified {
        let user = store::users::mark_verified(&mut tx, user.id).await?;
        store::users::announce(&mut tx, &user, vec!["email_verified".into()]).await?;
    }
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password reset");
    sessions::end(state, user.id, Ending::AllBut(None), "password reset").await
}
