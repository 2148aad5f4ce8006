//! task-svc's read model of users, kept from `user.*` events, so assignments are checked without
//! calling user-svc. A deleted user's assignments are cleared (recorded in each task's history
//! with the nil actor, and announced as `task.updated`); a deactivated user keeps them but
//! cannot be given new ones. A deactivated or deleted user's cron templates and jobs not yet
//! running are cancelled ([`crate::stopping`]).

use serde_json::{json, Map};
use shared::{
    consumer::{Handler, HandlerError, Incoming},
    events::{EventPayload, UserCreated, UserDeleted, UserUpdated},
    idempotency,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{domain::task::Task, service::tasks::save, store::tasks::COLUMNS};

pub const CONSUMER: &str = "task-svc.users";

pub struct UserEvents {
    pub pool: PgPool,
    pub cache: crate::cache::ListCache,
}

/// A deactivated or deleted user's cron templates and waiting jobs stop.
async fn stop_jobs(
    tx: &mut sqlx::PgConnection,
    cache: &crate::cache::ListCache,
    user: Uuid,
) -> Result<Vec<Uuid>, HandlerError> {
    crate::stopping::stop_owned(tx, cache, user, None)
        .await
        .map_err(|e| match e.status.is_server_error() {
            // Redis or the database: held until it is back, without spending attempts.
            true => HandlerError::Unavailable(anyhow::anyhow!("{e:?}")),
            false => HandlerError::Retry(anyhow::anyhow!("{e:?}")),
        })
}

fn reject(err: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Reject(err.into())
}

impl Handler for UserEvents {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let event = &message.event;
        let mut tx = self.pool.begin().await?;
        if !idempotency::first_time(&mut tx, CONSUMER, event.id).await? {
            return Ok(());
        }
        match event.event_type.as_str() {
            UserCreated::TYPE => {
                let user: UserCreated = event.decode().map_err(reject)?;
                sqlx::query(
                    "INSERT INTO users (id, display_name, active) VALUES ($1, $2, true)
                     ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name",
                )
                .bind(user.user_id)
                .bind(&user.display_name)
                .execute(&mut *tx)
                .await?;
            }
            UserUpdated::TYPE => {
                let user: UserUpdated = event.decode().map_err(reject)?;
                sqlx::query(
                    "INSERT INTO users (id, display_name, active) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE
                        SET display_name = EXCLUDED.display_name, active = EXCLUDED.active,
                            updated_at = now()",
                )
                .bind(user.user_id)
                .bind(&user.display_name)
                .bind(user.active)
                .execute(&mut *tx)
                .await?;
                if !user.active {
                    let audience = stop_jobs(&mut tx, &self.cache, user.user_id).await?;
                    tx.commit().await?;
                    self.cache.invalidate(&audience).await;
                    return Ok(());
                }
            }
            UserDeleted::TYPE => {
                let user: UserDeleted = event.decode().map_err(reject)?;
                sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(user.user_id)
                    .execute(&mut *tx)
                    .await?;
                let assigned: Vec<Task> = sqlx::query_as(&format!(
                    "SELECT {} FROM tasks WHERE assignee_id = $1 FOR UPDATE",
                    COLUMNS
                ))
                .bind(user.user_id)
                .fetch_all(&mut *tx)
                .await?;
                let mut audience = stop_jobs(&mut tx, &self.cache, user.user_id).await?;
                for task in assigned {
                    audience.extend(crate::cache::audience(&mut tx, &task).await?);
                    let mut after = task.clone();
                    after.assignee_id = None;
                    let mut changes = Map::new();
                    changes.insert(
                        "assignee_id".into(),
                        json!({ "from": task.assignee_id, "to": null }),
                    );
                    save(&mut tx, &after, Uuid::nil(), changes)
                        .await
                        .map_err(|e| HandlerError::Retry(anyhow::anyhow!("{e:?}")))?;
                }
                tx.commit().await?;
                self.cache.invalidate(&audience).await;
                return Ok(());
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(())
    }
}
