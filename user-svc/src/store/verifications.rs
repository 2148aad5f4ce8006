//! The `email_verifications` table (tokens stored only as their SHA-256) and the record of
//! bootstrap admins promoted.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A new verification token for `user_id`, replacing any earlier one.
pub async fn replace(
    tx: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO email_verifications (user_id, token_hash, email, expires_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE
            SET token_hash = $2, email = $3, expires_at = $4, created_at = now()",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(email)
    .bind(expires_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// When `user_id`'s current token was issued, if one is outstanding.
pub async fn issued_at(
    tx: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT created_at FROM email_verifications WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(tx)
        .await
}

/// A presented token.
#[derive(sqlx::FromRow)]
pub struct Taken {
    pub user_id: Uuid,
    pub email: String,
    pub expires_at: DateTime<Utc>,
}

/// The token with `token_hash`, if any, without taking it.
pub async fn find(tx: &mut PgConnection, token_hash: &[u8]) -> Result<Option<Taken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, email, expires_at FROM email_verifications WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(tx)
    .await
}

/// Whether `email`'s bootstrap promotion was recorded.
pub async fn bootstrapped(tx: &mut PgConnection, email: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bootstrap_admins WHERE email = lower($1))")
        .bind(email)
        .fetch_one(tx)
        .await
}

/// Removes the token with `token_hash` (used or expired, it never works again); what it was.
pub async fn take(tx: &mut PgConnection, token_hash: &[u8]) -> Result<Option<Taken>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM email_verifications WHERE token_hash = $1
         RETURNING user_id, email, expires_at",
    )
    .bind(token_hash)
    .fetch_optional(tx)
    .await
}

/// Records `email`'s bootstrap promotion; false when it was recorded before (promoted once).
pub async fn record_bootstrap(
    tx: &mut PgConnection,
    email: &str,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO bootstrap_admins (email, user_id) VALUES (lower($1), $2)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(user_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
