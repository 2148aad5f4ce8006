//! In-app notifications.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A notification as its recipient sees it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// What it is about: `task.assigned`, `task.status_changed`, … (see the preferences).
    pub kind: String,
    pub title: String,
    pub body: String,
    /// The id of what it is about (a task, a channel, a webhook endpoint).
    pub subject: Option<String>,
    /// Who caused it, if a person did.
    pub actor_id: Option<Uuid>,
    /// Where to look: an absolute URL.
    pub link: Option<String>,
    pub event_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

/// A notification to write.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub user_id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub subject: Option<String>,
    pub actor_id: Option<Uuid>,
    pub link: Option<String>,
    pub event_id: Uuid,
}

/// Writes `notes`, each unless one for its (event, recipient, kind) exists; the new ones with
/// their recipients.
pub async fn insert_many(
    tx: &mut PgConnection,
    notes: &[NewNotification],
) -> Result<Vec<(Uuid, Notification)>, sqlx::Error> {
    if notes.is_empty() {
        return Ok(Vec::new());
    }
    let column =
        |f: fn(&NewNotification) -> Option<String>| notes.iter().map(f).collect::<Vec<_>>();
    #[derive(sqlx::FromRow)]
    struct Written {
        user_id: Uuid,
        #[sqlx(flatten)]
        notification: Notification,
    }
    let written: Vec<Written> = sqlx::query_as(
        "INSERT INTO notifications (id, user_id, kind, title, body, subject, actor_id, link, event_id)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::uuid[], $8::text[], $9::uuid[])
         ON CONFLICT (event_id, user_id, kind) DO NOTHING
         RETURNING user_id, id, kind, title, body, subject, actor_id, link, event_id, created_at,
                   read_at",
    )
    .bind(notes.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(notes.iter().map(|n| n.user_id).collect::<Vec<_>>())
    .bind(column(|n| Some(n.kind.clone())))
    .bind(column(|n| Some(n.title.clone())))
    .bind(column(|n| Some(n.body.clone())))
    .bind(column(|n| n.subject.clone()))
    .bind(notes.iter().map(|n| n.actor_id).collect::<Vec<_>>())
    .bind(column(|n| n.link.clone()))
    .bind(notes.iter().map(|n| n.event_id).collect::<Vec<_>>())
    .fetch_all(tx)
    .await?;
    Ok(written
        .into_iter()
        .map(|w| (w.user_id, w.notification))
        .collect())
}

/// A page of `user_id`'s notifications, newest first, older than `before` if given.
pub async fn page(
    pool: &PgPool,
    user_id: Uuid,
    unread_only: bool,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, title, body, subject, actor_id, link, event_id, created_at, read_at
           FROM notifications
          WHERE user_id = $1 AND ($2 = false OR read_at IS NULL)
            AND ($3::uuid IS NULL OR id < $3)
          ORDER BY id DESC LIMIT $4",
    )
    .bind(user_id)
    .bind(unread_only)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn unread_count(pool: &PgPool, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user_id)
        .fetch_one(pool)
        .await
}

/// Marks one read; `false` when `user_id` has no such notification.
pub async fn mark_read(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE notifications SET read_at = COALESCE(read_at, now()) WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks every unread one read; how many were.
pub async fn mark_all_read(pool: &PgPool, user_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes one; `false` when `user_id` has no such notification.
pub async fn delete(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM notifications WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}
