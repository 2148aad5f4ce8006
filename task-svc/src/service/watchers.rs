//! Following a task: its owner, its assignee and its commenters follow it by default; anyone
//! who may see it follows or unfollows it. Followers hear of its moves (their notifications are
//! notify-svc's, from the followers each `task.status_changed` and `task.completed` names).

use serde::Serialize;
use shared::identity::Identity;

use crate::{error::TaskError, store, AppState};

/// A task's followers, and whether the caller is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Followers {
    pub following: bool,
    /// Everyone who follows it and may see it, by id (names: `GET /api/v1/people?ids=`).
    pub items: Vec<uuid::Uuid>,
}

/// Task `id`'s followers, if `identity` may see it.
pub async fn list(state: &AppState, identity: &Identity, id: &str) -> Result<Followers, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let task = crate::service::tasks::visible_task(&mut conn, identity, id).await?;
    let items = store::watchers::followers(&mut conn, task.id).await?;
    Ok(Followers {
        following: items.contains(&identity.user_id),
        items,
    })
}

/// `identity` follows task `id` (`following`) or stops; who may see it may do either.
pub async fn choose(
    state: &AppState,
    identity: &Identity,
    id: &str,
    following: bool,
) -> Result<Followers, TaskError> {
    let mut tx = state.pool.begin().await?;
    let task = crate::service::tasks::visible_task(&mut tx, identity, id).await?;
    store::watchers::choose(&mut tx, task.id, identity.user_id, following).await?;
    let items = store::watchers::followers(&mut tx, task.id).await?;
    tx.commit().await?;
    Ok(Followers {
        following: items.contains(&identity.user_id),
        items,
    })
}
