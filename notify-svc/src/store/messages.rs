//! Outgoing mail and SMS: one row per (event, recipient, kind, channel), whose id is derived
//! from those, so every replica and every redelivery agrees on it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Channel, Kind};

/// What a message's templates need, kept with it so that sending needs nothing else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Content {
    pub to_name: String,
    /// The address (email) or number (SMS) it goes to.
    pub to: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub channel: String,
    pub user_id: Uuid,
    pub kind: String,
    pub event_id: Uuid,
    #[sqlx(json)]
    pub content: Content,
    pub state: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// The id of the message about `event_id` for `user_id` of `kind` on `channel`.
pub fn message_id(event_id: Uuid, user_id: Uuid, kind: Kind, channel: Channel) -> Uuid {
    let name = format!("{event_id}/{user_id}/{kind}/{}", channel.as_str());
    Uuid::new_v5(&event_id, name.as_bytes())
}

/// Writes a queued message unless it exists; whether it was new.
pub async fn insert(
    tx: &mut PgConnection,
    id: Uuid,
    channel: Channel,
    user_id: Uuid,
    kind: Kind,
    event_id: Uuid,
    content: &Content,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO messages (id, channel, user_id, kind, event_id, content)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(channel.as_str())
    .bind(user_id)
    .bind(kind.as_str())
    .bind(event_id)
    .bind(sqlx::types::Json(content))
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Message>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, channel, user_id, kind, event_id, content, state, attempts, created_at
           FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Mails sent to `user_id` in the last hour.
pub async fn sent_last_hour(pool: &PgPool, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM messages
          WHERE user_id = $1 AND channel = 'email' AND state = 'sent'
            AND sent_at > now() - interval '1 hour'",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
}

/// Moves a queued message to `state` (sent, held, failed, skipped).
pub async fn settle(
    pool: &PgPool,
    id: Uuid,
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = $2, last_error = $3, attempts = attempts + 1,
                sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
          WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts a failed attempt that will be retried.
pub async fn failed_attempt(pool: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// People with held mail who have room in their hourly cap.
pub async fn digest_due(pool: &PgPool, cap: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT h.user_id FROM messages h
          WHERE h.state = 'held' AND h.channel = 'email'
            AND (SELECT count(*) FROM messages s
                  WHERE s.user_id = h.user_id AND s.channel = 'email' AND s.state = 'sent'
                    AND s.sent_at > now() - interval '1 hour') < $1
          LIMIT 100",
    )
    .bind(cap)
    .fetch_all(pool)
    .await
}

/// Locks `user_id`'s held mails (oldest first, at most 100) for a digest; another replica
/// skips them.
pub async fn lock_held(tx: &mut PgConnection, user_id: Uuid) -> Result<Vec<Message>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, channel, user_id, kind, event_id, content, state, attempts, created_at
           FROM messages WHERE user_id = $1 AND state = 'held' AND channel = 'email'
          ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .bind(user_id)
    .fetch_all(tx)
    .await
}

/// Records that `digest_id` carried `ids`, and counts the digest as one sent mail.
pub async fn digested(
    tx: &mut PgConnection,
    ids: &[Uuid],
    digest_id: Uuid,
    user_id: Uuid,
    content: &Content,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET state = 'digested', digest_id = $2 WHERE id = ANY($1)")
        .bind(ids)
        .bind(digest_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO messages (id, channel, user_id, kind, event_id, content, state, attempts, sent_at)
         VALUES ($1, 'email', $2, 'digest', $1, $3, 'sent', 1, now()) ON CONFLICT (id) DO NOTHING",
    )
    .bind(digest_id)
    .bind(user_id)
    .bind(sqlx::types::Json(content))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
