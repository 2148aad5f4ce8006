//! The `users` table.

use shared::events::{CloudEvent, UserUpdated};
use shared::identity::Role;
use shared::outbox;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::account::{Change, User};
use crate::SERVICE;

const COLUMNS: &str = "id, email, display_name, role, active, email_verified, created_at";

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The user, locked for an update in `tx`.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(tx)
    .await
}

/// A new account; `None` when the email is taken.
pub async fn insert(
    tx: &mut PgConnection,
    email: &str,
    display_name: &str,
    password_hash: &str,
    role: Role,
) -> Result<Option<User>, sqlx::Error> {
    let inserted = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, display_name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(role)
    .fetch_one(tx)
    .await;
    match inserted {
        Ok(user) => Ok(Some(user)),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => Ok(None),
        Err(e) => Err(e),
    }
}

/// What login checks, by email (any case).
pub struct Credentials {
    pub id: Uuid,
    pub password_hash: String,
    pub role: Role,
    pub active: bool,
}

pub async fn credentials(pool: &PgPool, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let row: Option<(Uuid, String, Role, bool)> = sqlx::query_as(
        "SELECT id, password_hash, role, active FROM users WHERE lower(email) = lower($1)",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, password_hash, role, active)| Credentials {
        id,
        password_hash,
        role,
        active,
    }))
}

/// The email and password hash of `id`.
pub async fn password_of(pool: &PgPool, id: Uuid) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT email, password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Stores a new hash; `touch` marks the account updated (a change, not a rehash).
pub async fn set_password_hash(
    pool: impl sqlx::PgExecutor<'_>,
    id: Uuid,
    hash: &str,
    touch: bool,
) -> Result<(), sqlx::Error> {
    let sql = if touch {
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1"
    } else {
        "UPDATE users SET password_hash = $2 WHERE id = $1"
    };
    sqlx::query(sql).bind(id).bind(hash).execute(pool).await?;
    Ok(())
}

/// The user whose address is `email`, letter case aside.
pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// A page of users, oldest first.
pub async fn list(pool: &PgPool, offset: u32, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY created_at, id OFFSET $1 LIMIT $2"
    ))
    .bind(i64::from(offset))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Applies `change` to a user locked in `tx`.
pub async fn update(tx: &mut PgConnection, id: Uuid, change: &Change) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE users SET display_name = COALESCE($2, display_name), role = COALESCE($3, role),
                active = COALESCE($4, active), updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&change.display_name)
    .bind(change.role)
    .bind(change.active)
    .fetch_one(tx)
    .await
}

/// Whether a user was deleted.
pub async fn delete(tx: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(tx)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// The account with `email` (any case), locked for an update in `tx`.
pub async fn lock_by_email(
    tx: &mut PgConnection,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1) FOR UPDATE"
    ))
    .bind(email)
    .fetch_optional(tx)
    .await
}

/// Marks `id`'s address verified.
pub async fn mark_verified(tx: &mut PgConnection, id: Uuid) -> Result<User, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE users SET email_verified = true, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_one(tx)
    .await
}

/// Gives `id` the verified address `email`; `None` when another account has it.
pub async fn change_email(
    tx: &mut PgConnection,
    id: Uuid,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    let changed = sqlx::query_as(&format!(
        "UPDATE users SET email = $2, email_verified = true, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(email)
    .fetch_one(tx)
    .await;
    match changed {
        Ok(user) => Ok(Some(user)),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether an account other than `id` has `email` (any case).
pub async fn email_taken(
    conn: &mut PgConnection,
    email: &str,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND id <> $2)",
    )
    .bind(email)
    .bind(id)
    .fetch_one(conn)
    .await
}

/// `user.updated` for `changed` fields, through the outbox in `tx` (nothing when none changed).
pub async fn announce(
    tx: &mut PgConnection,
    user: &User,
    changed: Vec<String>,
) -> Result<(), sqlx::Error> {
    if changed.is_empty() {
        return Ok(());
    }
    let event = UserUpdated {
        user_id: user.id,
        display_name: user.display_name.clone(),
        role: user.role.as_str().into(),
        active: user.active,
        email_verified: Some(user.email_verified),
        email: changed
            .iter()
            .any(|c| c == "email")
            .then(|| user.email.clone()),
        changed,
    };
    outbox::enqueue(tx, CloudEvent::new(SERVICE, event)).await?;
    Ok(())
}
