//! The `sessions` and `refresh_tokens` tables. Refresh tokens are stored only as their SHA-256.

use chrono::{DateTime, Utc};
use shared::identity::Role;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::session::Presented;

pub async fn insert_session(
    tx: &mut PgConnection,
    session_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(session_id)
        .bind(user_id)
        .bind(expires_at)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn insert_refresh(
    tx: &mut PgConnection,
    token_hash: &[u8],
    session_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)")
        .bind(token_hash)
        .bind(session_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// A presented refresh token with its session and user, locked in `tx`.
pub struct Found {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub presented: Presented,
}

pub async fn find_refresh(
    tx: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<Found>, sqlx::Error> {
    type Row = (
        Uuid,
        Option<DateTime<Utc>>,
        Uuid,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Role,
        bool,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.session_id, t.used_at, s.user_id, s.expires_at, s.revoked_at, u.role, u.active
           FROM refresh_tokens t
           JOIN sessions s ON s.id = t.session_id
           JOIN users u ON u.id = s.user_id
          WHERE t.token_hash = $1
            FOR UPDATE OF t, s",
    )
    .bind(token_hash)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(
        |(session_id, used_at, user_id, expires_at, revoked_at, role, active)| Found {
            session_id,
            user_id,
            role,
            presented: Presented {
                used: used_at.is_some(),
                revoked: revoked_at.is_some(),
                expires_at,
                user_active: active,
            },
        },
    ))
}

pub async fn spend_refresh(tx: &mut PgConnection, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(token_hash)
        .execute(tx)
        .await?;
    Ok(())
}

/// Marks sessions revoked.
pub async fn revoke(
    tx: &mut PgConnection,
    session_ids: &[Uuid],
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
          WHERE id = ANY($1) AND revoked_at IS NULL",
    )
    .bind(session_ids)
    .bind(reason)
    .execute(tx)
    .await?;
    Ok(())
}

/// The live sessions of `user_id`, except `keep`.
pub async fn live_of_user(
    tx: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM sessions
          WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(keep)
    .fetch_all(tx)
    .await
}

/// The live ones among `session_ids` (personal access tokens' ids count as sessions): not
/// ended, not expired, their user active.
pub async fn live_among(pool: &PgPool, session_ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = ANY($1) AND s.revoked_at IS NULL AND s.expires_at > now() AND u.active
         UNION ALL
         SELECT t.id FROM access_tokens t JOIN users u ON u.id = t.user_id
          WHERE t.id = ANY($1) AND t.revoked_at IS NULL AND t.expires_at > now() AND u.active",
    )
    .bind(session_ids)
    .fetch_all(pool)
    .await
}
