//! The event consumer: turns events into in-app notifications, once per event.

use shared::{
    consumer::{BatchHandler, Handler, HandlerError, Incoming},
    events::{CloudEvent, EventPayload, TaskCreated, TaskDead, TaskDueSoon, UserCreated},
    idempotency,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Name under which this consumer records processed events.
pub const CONSUMER: &str = "notify-svc.notifications";

pub struct NotificationHandler {
    pub pool: PgPool,
}

fn reject(err: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Reject(err.into())
}

/// Whether an event makes a notification; the others are acked without touching the database.
fn notifies(event: &CloudEvent) -> bool {
    match event.event_type.as_str() {
        UserCreated::TYPE | TaskDueSoon::TYPE | TaskDead::TYPE => true,
        // Programs create jobs by the thousand; their owners hear about failures, not about
        // every creation.
        TaskCreated::TYPE => event.data.get("job_kind").is_none_or(|k| k.is_null()),
        _ => false,
    }
}

impl NotificationHandler {
    /// Writes the event's notifications inside `tx`, once.
    async fn apply(&self, tx: &mut PgConnection, event: &CloudEvent) -> Result<(), HandlerError> {
        if !notifies(event) {
            return Ok(());
        }
        if !idempotency::first_time(&mut *tx, CONSUMER, event.id).await? {
            tracing::debug!(event_id = %event.id, "duplicate event skipped");
            return Ok(());
        }
        match event.event_type.as_str() {
            UserCreated::TYPE => {
                let data: UserCreated = event.decode().map_err(reject)?;
                let note = Note {
                    user_id: data.user_id,
                    kind: "welcome",
                    title: format!("Welcome to Taskmesh, {}", data.display_name),
                    subject: data.user_id.to_string(),
                };
                note.insert(&mut *tx, event.id).await?;
            }
            TaskCreated::TYPE => {
                let data: TaskCreated = event.decode().map_err(reject)?;
                let note = Note {
                    user_id: data.owner_id,
                    kind: "task_created",
                    title: format!("Task created: {}", data.title),
                    subject: data.task_id.to_string(),
                };
                note.insert(&mut *tx, event.id).await?;
                if let Some(assignee) = data.assignee_id.filter(|a| *a != data.owner_id) {
                    let note = Note {
                        user_id: assignee,
                        kind: "task_assigned",
                        title: format!("You were assigned: {}", data.title),
                        subject: data.task_id.to_string(),
                    };
                    note.insert(&mut *tx, event.id).await?;
                }
            }
            TaskDead::TYPE => {
                let data: TaskDead = event.decode().map_err(reject)?;
                let note = Note {
                    user_id: data.owner_id,
                    kind: "job_dead",
                    title: format!(
                        "Job failed for good after {} attempts: {} ({})",
                        data.attempts,
                        data.title,
                        data.error.chars().take(200).collect::<String>()
                    ),
                    subject: data.task_id.to_string(),
                };
                note.insert(&mut *tx, event.id).await?;
            }
            TaskDueSoon::TYPE => {
                let data: TaskDueSoon = event.decode().map_err(reject)?;
                let recipients = std::iter::once(data.owner_id)
                    .chain(data.assignee_id.filter(|a| *a != data.owner_id));
                for user_id in recipients {
                    let note = Note {
                        user_id,
                        kind: "task_due_soon",
                        title: format!("Due soon: {}", data.title),
                        subject: data.task_id.to_string(),
                    };
                    note.insert(&mut *tx, event.id).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Handler for NotificationHandler {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        if !notifies(&message.event) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        self.apply(&mut tx, &message.event).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl BatchHandler for NotificationHandler {
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        if !messages.iter().any(|m| notifies(&m.event)) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for message in messages {
            self.apply(&mut tx, &message.event).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

struct Note {
    user_id: Uuid,
    kind: &'static str,
    title: String,
    subject: String,
}

impl Note {
    async fn insert(&self, tx: &mut PgConnection, event_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, title, subject, event_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(self.user_id)
        .bind(self.kind)
        .bind(&self.title)
        .bind(&self.subject)
        .bind(event_id)
        .execute(tx)
        .await?;
        Ok(())
    }
}
