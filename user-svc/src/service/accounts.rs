//! Accounts: registration, profiles, password changes, and admins' changes and deletions.
//! Every change is announced (`user.created`, `user.updated`, `user.deleted`) through the outbox
//! in the transaction that makes it.

use shared::{
    events::{CloudEvent, UserCreated, UserDeleted},
    identity::Role,
    outbox,
    paging::Limit,
};
use uuid::Uuid;

use crate::{
    domain::{
        account::{self, Change, User},
        password,
        session::Ending,
    },
    error::UserError,
    infra::{hashing, mirror},
    service::{sessions, verification},
    store, AppState, SERVICE,
};

/// What registration needs, as the client sent it.
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: String,
    pub display_name: &'a str,
}

pub async fn register(state: &AppState, new: Registration<'_>) -> Result<User, UserError> {
    let email = account::parse_email(new.email)?;
    password::check_policy(&new.password, &email)?;
    let display_name = account::parse_display_name(new.display_name)?;
    let password_hash = hashing::hash(new.password).await?;
    let mut tx = state.pool.begin().await?;
    let user = store::users::insert(&mut tx, &email, &display_name, &password_hash, Role::Member)
        .await?
        .ok_or_else(|| {
            UserError::conflict("email_taken", "an account with this email already exists")
        })?;
    let event = UserCreated {
        user_id: user.id,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: user.role.as_str().into(),
    };
    outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, event)).await?;
    verification::issue(&mut tx, &user).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(user)
}

pub async fn find(state: &AppState, id: Uuid) -> Result<User, UserError> {
    let mut conn = state.pool.acquire().await?;
    store::users::find(&mut conn, id)
        .await?
        .ok_or(UserError::NotFound("user"))
}

/// The active user whose address is `email` (letter case aside); 404 otherwise, also for
/// something that is no address.
pub async fn by_email(state: &AppState, email: &str) -> Result<User, UserError> {
    let email = email.trim();
    if email.is_empty() || email.len() > 320 || !email.contains('@') {
        return Err(UserError::NotFound("user"));
    }
    store::users::by_email(&state.pool, email)
        .await?
        .filter(|user| user.active)
        .ok_or(UserError::NotFound("user"))
}

/// A page of users, oldest first; `limit` is clamped to 1 to 200 (default 50).
pub async fn list(
    state: &AppState,
    offset: u32,
    limit: Option<u32>,
) -> Result<(Vec<User>, u32), UserError> {
    let limit = Limit::new(50, 200).clamp(limit);
    let users = store::users::list(&state.pool, offset, limit).await?;
    Ok((users, limit as u32))
}

/// The user's own change of their display name.
pub async fn update_own(
    state: &AppState,
    id: Uuid,
    display_name: Option<&str>,
) -> Result<User, UserError> {
    let change = Change {
        display_name: display_name.map(account::parse_display_name).transpose()?,
        ..Change::default()
    };
    apply(state, id, &change).await
}

/// Changes the caller's password and ends every other session.
pub async fn change_password(
    state: &AppState,
    id: Uuid,
    session: Option<Uuid>,
    current: String,
    new: String,
) -> Result<(), UserError> {
    let (email, stored) = store::users::password_of(&state.pool, id)
        .await?
        .ok_or(UserError::NotFound("user"))?;
    if !hashing::verify(current, stored).await?.ok {
        return Err(UserError::Forbidden {
            code: "wrong_password",
            detail: "current_password is wrong".into(),
        });
    }
    password::check_policy(&new, &email)?;
    let hash = hashing::hash(new).await?;
    store::users::set_password_hash(&state.pool, id, &hash, true).await?;
    sessions::end(state, id, Ending::AllBut(session), "password changed").await
}

/// An admin's change of another user (or of their own display name); deactivation or a role
/// change signs the user out and revokes their personal access tokens.
pub async fn admin_update(
    state: &AppState,
    admin: Uuid,
    id: Uuid,
    display_name: Option<&str>,
    role: Option<shared::identity::Role>,
    active: Option<bool>,
) -> Result<User, UserError> {
    let mut change = Change {
        display_name: None,
        role,
        active,
    };
    account::check_admin_change(admin, id, &change)?;
    change.display_name = display_name.map(account::parse_display_name).transpose()?;
    let user = apply(state, id, &change).await?;
    if change.signs_out() {
        let reason = "deactivated or role changed";
        super::tokens::revoke_all(state, id, reason).await?;
        sessions::end(state, id, Ending::AllBut(None), reason).await?;
    }
    Ok(user)
}

/// Deletes a user (never the admin's own account) and ends their sessions and tokens.
pub async fn delete(state: &AppState, admin: Uuid, id: Uuid) -> Result<(), UserError> {
    if id == admin {
        return Err(UserError::conflict(
            "own_account",
            "an admin cannot delete their own account",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let mut sessions = store::sessions::live_of_user(&mut tx, id, None).await?;
    sessions.extend(store::tokens::revoke_all_of_user(&mut tx, id, "user deleted").await?);
    if !store::users::delete(&mut tx, id).await? {
        return Err(UserError::NotFound("user"));
    }
    let event = UserDeleted { user_id: id };
    outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, event)).await?;
    tx.commit().await?;
    mirror::remove(state, &sessions).await
}

/// Applies `change` and publishes `user.updated` naming the fields that changed.
async fn apply(state: &AppState, id: Uuid, change: &Change) -> Result<User, UserError> {
    let mut tx = state.pool.begin().await?;
    let before = store::users::lock(&mut tx, id)
        .await?
        .ok_or(UserError::NotFound("user"))?;
    let user = store::users::update(&mut tx, id, change).await?;
    let changed = account::changed_fields(&before, &user);
    store::users::announce(&mut tx, &user, changed).await?;
    tx.commit().await?;
    Ok(user)
}
