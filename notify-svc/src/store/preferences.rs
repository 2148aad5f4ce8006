//! People's choices per kind and channel (a missing row is the kind's default) and their SMS
//! numbers, verified by a code.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Channel, Kind};

/// One person's explicit choices.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub explicit: HashMap<(Kind, Channel), bool>,
    pub phone: Option<String>,
    pub phone_verified: bool,
}

impl Choices {
    pub fn enabled(&self, kind: Kind, channel: Channel) -> bool {
        self.explicit
            .get(&(kind, channel))
            .copied()
            .unwrap_or_else(|| kind.default_on(channel))
    }

    /// The number texts go to: only a verified one.
    pub fn texts_to(&self) -> Option<&str> {
        self.phone.as_deref().filter(|_| self.phone_verified)
    }
}

/// The choices of each of `users` about `kind` (and every kind when `kind` is `None`).
pub async fn choices(
    tx: &mut PgConnection,
    users: &[Uuid],
    kind: Option<Kind>,
) -> Result<HashMap<Uuid, Choices>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT user_id, kind, channel, enabled FROM preferences
          WHERE user_id = ANY($1) AND ($2::text IS NULL OR kind = $2)",
    )
    .bind(users)
    .bind(kind.map(Kind::as_str))
    .fetch_all(&mut *tx)
    .await?;
    let mut out: HashMap<Uuid, Choices> = users.iter().map(|u| (*u, Choices::default())).collect();
    for (user, kind, channel, enabled) in rows {
        if let (Some(kind), Some(channel)) =
            (kind.parse::<Kind>().ok(), channel.parse::<Channel>().ok())
        {
            out.entry(user)
                .or_default()
                .explicit
                .insert((kind, channel), enabled);
        }
    }
    let phones: Vec<(Uuid, Option<String>, bool)> = sqlx::query_as(
        "SELECT user_id, phone, phone_verified_at IS NOT NULL FROM contacts
          WHERE user_id = ANY($1)",
    )
    .bind(users)
    .fetch_all(&mut *tx)
    .await?;
    for (user, phone, verified) in phones {
        let choices = out.entry(user).or_default();
        choices.phone = phone;
        choices.phone_verified = verified;
    }
    Ok(out)
}

/// Records choices.
pub async fn set(
    tx: &mut PgConnection,
    user_id: Uuid,
    changes: &[(Kind, Channel, bool)],
) -> Result<(), sqlx::Error> {
    for (kind, channel, enabled) in changes {
        sqlx::query(
            "INSERT INTO preferences (user_id, kind, channel, enabled) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, kind, channel) DO UPDATE SET enabled = $4, updated_at = now()",
        )
        .bind(user_id)
        .bind(kind.as_str())
        .bind(channel.as_str())
        .bind(enabled)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// A person's number, and the code outstanding for it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Contact {
    pub phone: Option<String>,
    pub verified: bool,
    pub code_hash: Option<Vec<u8>>,
    pub code_sent_at: Option<DateTime<Utc>>,
    pub code_attempts: i32,
}

/// `user_id`'s number, locked in `tx`.
pub async fn lock_contact(
    tx: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<Contact>, sqlx::Error> {
    sqlx::query_as(
        "SELECT phone, phone_verified_at IS NOT NULL AS verified, code_hash, code_sent_at,
                code_attempts
           FROM contacts WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(tx)
    .await
}

/// Records (or, with `None`, removes) the person's SMS number, unverified, with the hash of
/// the code texted to it (a new code for the same number replaces the last).
pub async fn set_phone(
    tx: &mut PgConnection,
    user_id: Uuid,
    phone: Option<&str>,
    code_hash: Option<&[u8]>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contacts (user_id, phone, code_hash, code_sent_at)
         VALUES ($1, $2, $3, CASE WHEN $3::bytea IS NULL THEN NULL ELSE now() END)
         ON CONFLICT (user_id) DO UPDATE
            SET phone = $2, phone_verified_at = NULL, code_hash = $3,
                code_sent_at = EXCLUDED.code_sent_at, code_attempts = 0, updated_at = now()",
    )
    .bind(user_id)
    .bind(phone)
    .bind(code_hash)
    .execute(tx)
    .await?;
    Ok(())
}

/// The verification codes texted to `user_id` (queued) in the last 24 hours.
pub async fn codes_texted_today(tx: &mut PgConnection, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM messages
          WHERE user_id = $1 AND kind = 'sms.verification'
            AND created_at > now() - interval '24 hours'",
    )
    .bind(user_id)
    .fetch_one(tx)
    .await
}

/// A wrong code tried.
pub async fn count_attempt(tx: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE contacts SET code_attempts = code_attempts + 1 WHERE user_id = $1")
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// The number verified; its code spent.
pub async fn mark_verified(tx: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE contacts SET phone_verified_at = now(), code_hash = NULL, updated_at = now()
          WHERE user_id = $1",
    )
    .bind(user_id)
    .execute(tx)
    .await?;
    Ok(())
}
