//! Email verification: a one-time link mailed at registration and on request
//! (`notify.verification_mail` to notify-svc, which mails only verified addresses otherwise),
//! and the bootstrap admin, promoted once its address is verified, once.

use chrono::{Duration, Utc};
use shared::{
    events::{AccountMail, CloudEvent, VerificationMailDue},
    identity::Role,
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::account::{Change, User},
    error::UserError,
    infra::{hashing, signing},
    store, AppState, SERVICE,
};

/// How long a link works.
pub const LINK_TTL: Duration = Duration::hours(24);
/// How long after one link the next may be asked for.
pub const RESEND_AFTER: Duration = Duration::seconds(60);

/// Issues `user` a new link in `tx` (an earlier one stops working) and asks notify-svc to mail
/// it.
pub async fn issue(tx: &mut PgConnection, user: &User) -> Result<(), UserError> {
    issue_to(tx, user.id, &user.email, AccountMail::Verification).await
}

/// Issues a link that verifies `email` for account `user_id` (its own address, or the one it
/// changes to) in `tx`, replacing an earlier one, and asks notify-svc to mail it there.
async fn issue_to(
    tx: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    purpose: AccountMail,
) -> Result<(), UserError> {
    let (token, hash) = signing::opaque_token();
    let expires_at = Utc::now() + LINK_TTL;
    store::verifications::replace(&mut *tx, user_id, email, &hash, expires_at).await?;
    let command = VerificationMailDue {
        user_id,
        email: email.to_string(),
        token,
        expires_at,
        purpose,
    };
    outbox::enqueue(tx, CloudEvent::new(SERVICE, command)).await?;
    Ok(())
}

/// A new link for the signed-in user: 409 once verified, 429 within a minute of the last.
pub async fn resend(state: &AppState, user_id: Uuid) -> Result<(), UserError> {
    let mut tx = state.pool.begin().await?;
    let user = store::users::lock(&mut tx, user_id)
        .await?
        .ok_or(UserError::NotFound("user"))?;
    if user.email_verified {
        return Err(UserError::conflict(
            "already_verified",
            "this account's email address is already verified",
        ));
    }
    not_too_soon(&mut tx, user_id).await?;
    issue(&mut tx, &user).await?;
    tx.commit().await?;
    Ok(())
}

/// 429 within a minute of `user_id`'s last link.
async fn not_too_soon(tx: &mut PgConnection, user_id: Uuid) -> Result<(), UserError> {
    if let Some(issued) = store::verifications::issued_at(tx, user_id).await? {
        let wait = issued + RESEND_AFTER - Utc::now();
        if wait > Duration::zero() {
            let retry_after = wait.num_seconds().max(1) as u64;
            return Err(UserError::TooSoon { retry_after });
        }
    }
    Ok(())
}

/// Asks to change the signed-in user's address to `email`, with their password: a link is
/// mailed to the new address, and the account keeps its address until the link is opened
/// (then the new one is verified). 403 `wrong_password`, 409 `email_taken`, 429 `too_soon`.
pub async fn request_email_change(
    state: &AppState,
    user_id: Uuid,
    email: &str,
    password: String,
) -> Result<(), UserError> {
    let email = crate::domain::account::parse_email(email)?;
    check_password(state, user_id, password).await?;
    let mut tx = state.pool.begin().await?;
    let user = store::users::lock(&mut tx, user_id)
        .await?
        .ok_or(UserError::NotFound("user"))?;
    if user.email.eq_ignore_ascii_case(&email) {
        return Err(UserError::invalid(
            "same_email",
            "this is already the account's address",
        ));
    }
    if store::users::email_taken(&mut tx, &email, user_id).await? {
        return Err(UserError::conflict(
            "email_taken",
            "an account with this email already exists",
        ));
    }
    not_too_soon(&mut tx, user_id).await?;
    issue_to(&mut tx, user_id, &email, AccountMail::EmailChange).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user_id, "email change asked");
    Ok(())
}

fn invalid_link() -> UserError {
    UserError::invalid(
        "invalid_token",
        "this verification link does not work: it was used, replaced by a newer one, or cut short",
    )
}

/// Verifies the address a link was mailed to. The bootstrap address's account becomes admin
/// the first time, and only with its password (`password_required` until it is given, the link
/// kept): whoever registered the address first holds the password, and the mailbox's owner, who
/// opens the link, may not be them. A password, when given, must be the account's (403, the
/// link kept). A token works once; an expired one is used up too.
pub async fn verify(
    state: &AppState,
    token: &str,
    password: Option<String>,
) -> Result<User, UserError> {
    if token.is_empty() || token.len() > 128 {
        return Err(invalid_link());
    }
    let hash = signing::token_hash(token);
    let mut tx = state.pool.begin().await?;
    let found = store::verifications::find(&mut tx, &hash)
        .await?
        .ok_or_else(invalid_link)?;
    // The account first, then its token: the order a new link's request takes them in.
    let user = store::users::lock(&mut tx, found.user_id)
        .await?
        .ok_or_else(invalid_link)?;
    // A link mailed to another address than the account's confirms a change to it.
    let new_email = (!user.email.eq_ignore_ascii_case(&found.email)).then_some(found.email);
    let taken = store::verifications::take(&mut tx, &hash)
        .await?
        .ok_or_else(invalid_link)?;
    if taken.expires_at <= Utc::now() {
        tx.commit().await?;
        return Err(UserError::invalid(
            "token_expired",
            "this verification link has expired; sign in and ask for a new one",
        ));
    }
    if let Some(email) = new_email {
        let user = store::users::change_email(&mut tx, user.id, &email)
            .await?
            .ok_or_else(|| {
                UserError::conflict("email_taken", "an account with this email already exists")
            })?;
        store::users::announce(
            &mut tx,
            &user,
            vec!["email".into(), "email_verified".into()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "email address changed");
        return Ok(user);
    }
    let promote = bootstrap_pending(state, &mut tx, &user).await?;
    match password {
        Some(password) => check_password(state, user.id, password).await?,
        None if promote => {
            return Err(UserError::invalid(
                "password_required",
                "this address is the platform's first admin: give the account's password with \
                 the link to confirm it",
            ))
        }
        None => {}
    }
    let mut changed = Vec::new();
    let mut user = if user.email_verified {
        user
    } else {
        changed.push("email_verified".to_string());
        store::users::mark_verified(&mut tx, user.id).await?
    };
    if promote {
        user = promote_once(&mut tx, &user).await?.unwrap_or(user);
        changed.push("role".into());
    }
    store::users::announce(&mut tx, &user, changed).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "email address verified");
    Ok(user)
}

async fn check_password(state: &AppState, id: Uuid, password: String) -> Result<(), UserError> {
    let (_, stored) = store::users::password_of(&state.pool, id)
        .await?
        .ok_or(UserError::NotFound("user"))?;
    if !hashing::verify(password, stored).await?.ok {
        return Err(UserError::Forbidden {
            code: "wrong_password",
            detail: "this is not the account's password".into(),
        });
    }
    Ok(())
}

/// Whether `user` has the bootstrap address, is not admin, and its promotion was never made.
async fn bootstrap_pending(
    state: &AppState,
    tx: &mut PgConnection,
    user: &User,
) -> Result<bool, UserError> {
    let bootstrap = state.config.auth.bootstrap_admin_email.as_deref();
    let ours = bootstrap.is_some_and(|email| email.eq_ignore_ascii_case(&user.email));
    Ok(ours
        && user.role != Role::Admin
        && !store::verifications::bootstrapped(tx, &user.email).await?)
}

/// Makes `user` admin and records it, unless it was recorded before; the promoted user.
async fn promote_once(tx: &mut PgConnection, user: &User) -> Result<Option<User>, UserError> {
    if !store::verifications::record_bootstrap(&mut *tx, &user.email, user.id).await? {
        return Ok(None);
    }
    let change = Change {
        role: Some(Role::Admin),
        ..Change::default()
    };
    let promoted = store::users::update(tx, user.id, &change).await?;
    tracing::info!(user_id = %user.id, "bootstrap admin promoted");
    Ok(Some(promoted))
}

/// At start: the configured bootstrap address's account, verified before the address was
/// configured and never promoted, is promoted (announced like any role change). One an earlier
/// version made admin at registration stays admin; verified, it counts as promoted, unverified
/// it is named in a warning (whoever registered the address first got it).
pub async fn bootstrap_admin(state: &AppState, email: &str) -> Result<(), UserError> {
    let mut tx = state.pool.begin().await?;
    let Some(user) = store::users::lock_by_email(&mut tx, email).await? else {
        return Ok(());
    };
    if user.role == Role::Admin && !user.email_verified {
        tracing::warn!(
            user_id = %user.id,
            "the bootstrap admin's address is not verified: it was made admin on registration by \
             an earlier version; check it is yours (its owner can ask for a link from the dashboard)"
        );
    } else if user.email_verified && !store::verifications::bootstrapped(&mut tx, email).await? {
        if user.role == Role::Admin {
            store::verifications::record_bootstrap(&mut tx, &user.email, user.id).await?;
        } else if let Some(promoted) = promote_once(&mut tx, &user).await? {
            store::users::announce(&mut tx, &promoted, vec!["role".into()]).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
