//! The `user.*` events that keep task-svc's read model of users, so assignments (and the access
//! other services ask about) are checked without calling user-svc: decoded here, applied by
//! [`crate::service::users`]. A role this build does not know is refused (dead-lettered, seen).

use shared::{
    consumer::{Handler, HandlerError, Incoming},
    events::{EventPayload, UserCreated, UserDeleted, UserUpdated},
    idempotency,
};
use sqlx::PgPool;

use crate::{infra::list_cache::ListCache, service::users};

/// Consumer name in `processed_events`.
pub const CONSUMER: &str = "task-svc.users";

pub struct UserEvents {
    pub pool: PgPool,
    pub cache: ListCache,
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
        let audience = match event.event_type.as_str() {
            UserCreated::TYPE => {
                let user: UserCreated = event.decode().map_err(reject)?;
                let role = user.role.parse().map_err(reject)?;
                users::created(&mut tx, event.id, user.user_id, &user.display_name, role).await?
            }
            UserUpdated::TYPE => {
                let user: UserUpdated = event.decode().map_err(reject)?;
                let (id, name, active) = (user.user_id, &user.display_name, user.active);
                let role = user.role.parse().map_err(reject)?;
                users::updated(&mut tx, &self.cache, event.id, id, name, active, role).await?
            }
            UserDeleted::TYPE => {
                let user: UserDeleted = event.decode().map_err(reject)?;
                users::deleted(&mut tx, &self.cache, event.id, user.user_id).await?
            }
            _ => Vec::new(),
        };
        tx.commit().await?;
        self.cache.invalidate(&audience).await;
        Ok(())
    }
}
