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

/// Why a message cannot be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: send it, then [`settle`] or [`release`] it.
    Claimed,
    /// Sent, held or skipped: nothing to do.
    Settled,
    /// Being sent by someone else under a claim that has not lapsed: a duplicate command, or the
    /// redelivered command of a sender that died mid-send. The caller waits until that claim is
    /// settled or lapses, then claims again (acking now would lose the mail of a dead sender).
    Busy,
    /// Its person has had `cap` messages on this channel in the last hour: it is now held.
    Held,
    /// Its person is gone or deactivated: it is now skipped, its content cleared.
    Skipped,
}

const COLUMNS: &str = "id, channel, user_id, kind, event_id, content, state, attempts, created_at";

/// Claims message `id` for sending for `lease`, under a lock on its person, counting what they
/// got in the last hour against `cap` (what is being sent counts too, so concurrent senders
/// cannot pass the cap). A `failed` one can be claimed again: its command only comes back when
/// an operator moves it out of the dead-letter queue.
pub async fn claim(
    pool: &PgPool,
    id: Uuid,
    cap: i64,
    lease: std::time::Duration,
) -> Result<(Claim, Option<Message>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(message) =
        sqlx::query_as::<_, Message>(&format!("SELECT {COLUMNS} FROM messages WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok((Claim::Settled, None));
    };
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
        .bind(message.user_id)
        .execute(&mut *tx)
        .await?;
    let open: Option<(bool, bool)> = sqlx::query_as(
        "SELECT state = ANY('{queued,failed}') OR (state = 'sending' AND locked_until < now()),
                state = 'sending' AND locked_until >= now()
           FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    match open {
        Some((true, _)) => {}
        Some((false, true)) => return Ok((Claim::Busy, Some(message))),
        _ => return Ok((Claim::Settled, Some(message))),
    }
    let active: Option<bool> = sqlx::query_scalar("SELECT active FROM users WHERE id = $1")
        .bind(message.user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (claim, state) = if active != Some(true) {
        (Claim::Skipped, "skipped")
    } else {
        let recent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages
              WHERE user_id = $1 AND channel = $2
                AND ((state = 'sent' AND sent_at > now() - interval '1 hour')
                     OR (state = 'sending' AND locked_until >= now()))",
        )
        .bind(message.user_id)
        .bind(&message.channel)
        .fetch_one(&mut *tx)
        .await?;
        if recent >= cap {
            // Mail over the cap waits for a digest; a text over it is not sent at all.
            let over = if message.channel == "sms" {
                "skipped"
            } else {
                "held"
            };
            (Claim::Held, over)
        } else {
            (Claim::Claimed, "sending")
        }
    };
    sqlx::query(
        "UPDATE messages SET state = $2,
                locked_until = CASE WHEN $2 = 'sending' THEN now() + make_interval(secs => $3) END,
                content = CASE WHEN $2 = 'skipped' THEN '{}'::jsonb ELSE content END
          WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(lease.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((claim, Some(message)))
}

/// Records how sending a claimed message ended: `sent` or `failed`.
pub async fn settle(
    pool: &PgPool,
    id: Uuid,
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = $2, last_error = $3, attempts = attempts + 1,
                locked_until = NULL,
                sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
          WHERE id = $1 AND state = 'sending'",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands a claimed message back unsent (its server is away, or it will be retried), counting
/// the attempt when `error` is given.
pub async fn release(pool: &PgPool, id: Uuid, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = 'queued', locked_until = NULL,
                attempts = attempts + CASE WHEN $2::text IS NULL THEN 0 ELSE 1 END,
                last_error = COALESCE($2, last_error)
          WHERE id = $1 AND state = 'sending'",
    )
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
            AND EXISTS (SELECT 1 FROM users u WHERE u.id = h.user_id AND u.active)
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

/// Gives up `ids` (held mail whose digest the server refused for good).
pub async fn fail_held(
    tx: &mut PgConnection,
    ids: &[Uuid],
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = 'failed', last_error = $2 WHERE id = ANY($1) AND state = 'held'",
    )
    .bind(ids)
    .bind(error)
    .execute(tx)
    .await?;
    Ok(())
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
