//! The `password_resets` table: tokens stored only as their SHA-256, one per account.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A new reset token for `user_id`, replacing any earlier one; `false` (nothing written) when
/// the last was issued after `not_before`.
pub async fn replace(
    tx: &mut PgConnection,
    user_id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
    not_before: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query(
        "INSERT INTO password_resets (user_id, token_hash, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET token_hash = $2, expires_at = $3, created_at = now()
          WHERE password_resets.created_at <= $4",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(expires_at)
    .bind(not_before)
    .execute(tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// Removes the token with `token_hash` (used or expired, it never works again): its account
/// and when it expired.
pub async fn take(
    tx: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<(Uuid, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM password_resets WHERE token_hash = $1 RETURNING user_id, expires_at",
    )
    .bind(token_hash)
    .fetch_optional(tx)
    .await
}
