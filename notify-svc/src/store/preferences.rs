//! People's choices per kind and channel (a missing row is the kind's default) and their SMS
//! numbers.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Channel, Kind};

/// One person's explicit choices.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub explicit: HashMap<(Kind, Channel), bool>,
    pub phone: Option<String>,
}

impl Choices {
    pub fn enabled(&self, kind: Kind, channel: Channel) -> bool {
        self.explicit
            .get(&(kind, channel))
            .copied()
            .unwrap_or_else(|| kind.default_on(channel))
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
    let phones: Vec<(Uuid, Option<String>)> =
        sqlx::query_as("SELECT user_id, phone FROM contacts WHERE user_id = ANY($1)")
            .bind(users)
            .fetch_all(&mut *tx)
            .await?;
    for (user, phone) in phones {
        out.entry(user).or_default().phone = phone;
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

/// Records (or, with `None`, removes) the person's SMS number.
pub async fn set_phone(
    tx: &mut PgConnection,
    user_id: Uuid,
    phone: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO contacts (user_id, phone) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET phone = $2, updated_at = now()",
    )
    .bind(user_id)
    .bind(phone)
    .execute(tx)
    .await?;
    Ok(())
}
