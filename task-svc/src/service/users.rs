//! What task-svc does when a user changes (from `user.*` events). A deleted user's
//! assignments are cleared (recorded in each task's history with the nil actor, and announced
//! as `task.updated`); a deactivated user keeps them but cannot be given new ones. A
//! deactivated or deleted user's cron templates and jobs not yet running are stopped
//! ([`crate::service::stop`]).

use serde_json::{json, Map};
use shared::identity::Role;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    error::TaskError, infra::list_cache::ListCache, service::stop::stop_owned,
    service::tasks::save, store,
};

/// A new user. Returns everyone whose list changed (nobody).
pub async fn created(
    tx: &mut PgConnection,
    event_id: Uuid,
    id: Uuid,
    display_name: &str,
    role: Role,
) -> Result<Vec<Uuid>, TaskError> {
    store::users::insert(tx, event_id, id, display_name, role).await?;
    Ok(Vec::new())
}

/// A user's name, role or `active` flag changed; a deactivated user's jobs stop. Returns everyone
/// whose list changed.
pub async fn updated(
    tx: &mut PgConnection,
    marks: &ListCache,
    event_id: Uuid,
    id: Uuid,
    display_name: &str,
    active: bool,
    role: Role,
) -> Result<Vec<Uuid>, TaskError> {
    store::users::upsert(tx, event_id, id, display_name, active, role).await?;
    match active {
        true => Ok(Vec::new()),
        false => stop_owned(tx, marks, id, None).await,
    }
}

/// A user is gone: their jobs stop and their assignments are cleared. Returns everyone whose
/// list changed.
pub async fn deleted(
    tx: &mut PgConnection,
    marks: &ListCache,
    event_id: Uuid,
    id: Uuid,
) -> Result<Vec<Uuid>, TaskError> {
    store::users::delete(tx, event_id, id).await?;
    let assigned = store::users::assigned_tasks(tx, id).await?;
    let mut audience = stop_owned(tx, marks, id, None).await?;
    for task in assigned {
        audience.extend(store::tasks::audience(tx, &task).await?);
        let mut after = task.clone();
        after.assignee_id = None;
        let mut changes = Map::new();
        changes.insert(
            "assignee_id".into(),
            json!({ "from": task.assignee_id, "to": null }),
        );
        save(tx, &after, Uuid::nil(), changes).await?;
    }
    Ok(audience)
}
