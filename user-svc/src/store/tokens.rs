//! The `access_tokens` table. Tokens are stored only as their SHA-256.

use chrono::{DateTime, Utc};
use shared::identity::Role;
use shared::scopes::Scope;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::tokens::{Checked, TokenInfo};

const COLUMNS: &str = "id, user_id, name, scopes, created_at, last_used_at, expires_at";

/// Locks the owner's row, so that two creations count each other's tokens; the user's role, or
/// `None` without such an active user.
pub async fn lock_owner(tx: &mut PgConnection, user_id: Uuid) -> Result<Option<Role>, sqlx::Error> {
    sqlx::query_scalar("SELECT role FROM users WHERE id = $1 AND active FOR UPDATE")
        .bind(user_id)
        .fetch_optional(tx)
        .await
}

/// The user's live tokens: neither revoked nor expired.
pub async fn count_live(tx: &mut PgConnection, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM access_tokens
          WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(user_id)
    .fetch_one(tx)
    .await
}

pub async fn insert(
    tx: &mut PgConnection,
    id: Uuid,
    user_id: Uuid,
    token: &Checked,
    token_hash: &[u8],
) -> Result<TokenInfo, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO access_tokens (id, user_id, name, scopes, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user_id)
    .bind(&token.name)
    .bind(&token.scopes)
    .bind(token_hash)
    .bind(token.expires_at)
    .fetch_one(tx)
    .await
}

/// The unrevoked tokens of `user_id` (every user's without one), newest first, at most `limit`.
pub async fn list(
    pool: &PgPool,
    user_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TokenInfo>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM access_tokens
          WHERE revoked_at IS NULL AND ($1::uuid IS NULL OR user_id = $1)
          ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Revokes token `id` (only if `owner` owns it, with one); whether it was live until now.
pub async fn revoke(
    tx: &mut PgConnection,
    id: Uuid,
    owner: Option<Uuid>,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE access_tokens SET revoked_at = now(), revoked_reason = $3
          WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(owner)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every unrevoked token of `user_id`; their ids.
pub async fn revoke_all_of_user(
    tx: &mut PgConnection,
    user_id: Uuid,
    reason: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE access_tokens SET revoked_at = now(), revoked_reason = $2
          WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(user_id)
    .bind(reason)
    .fetch_all(tx)
    .await
}

/// A live token with this hash, its row locked (a revocation waits for it), with its owner's
/// role, marked used now.
pub struct Live {
    pub id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
}

pub async fn use_live(
    tx: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<Live>, sqlx::Error> {
    type Row = (Uuid, Uuid, Role, Vec<Scope>, DateTime<Utc>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.id, t.user_id, u.role, t.scopes, t.expires_at
           FROM access_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND u.active
          FOR UPDATE OF t",
    )
    .bind(token_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, user_id, role, scopes, expires_at)) = row else {
        return Ok(None);
    };
    sqlx::query("UPDATE access_tokens SET last_used_at = now() WHERE id = $1")
        .bind(id)
        .execute(tx)
        .await?;
    Ok(Some(Live {
        id,
        user_id,
        role,
        scopes,
        expires_at,
    }))
}
