//! Subtasks: a task lists those the caller may see, with its progress (done / total). Which
//! parent a task may have is checked where it is written ([`crate::service::tasks::check_parent`]).

use serde::Serialize;
use shared::identity::Identity;

use crate::{domain::task::Task, error::TaskError, store, AppState};

/// A task's subtasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Children {
    /// Those the caller may see, oldest first (at most 500).
    pub items: Vec<Task>,
    /// Of all its subtasks, how many are done.
    pub done: i64,
    pub total: i64,
}

/// Task `id`'s subtasks, if `identity` may see it.
pub async fn children(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<Children, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let task = crate::service::tasks::visible_task(&mut conn, identity, id).await?;
    let (items, done, total) =
        store::relations::children(&mut conn, task.id, identity.user_id, identity.is_admin())
            .await?;
    Ok(Children { items, done, total })
}
