//! Relations between tasks: who may see a task reads its relations (to tasks they may also
//! see); who may change it, or its assignee, relates it to another task they may see, or
//! removes a relation. Each side reads a relation in its own words.

use serde::{Deserialize, Serialize};
use shared::identity::Identity;
use uuid::Uuid;

use crate::{
    domain::relation::{Relation, Stored},
    error::TaskError,
    store, AppState,
};

/// Most relations one task has.
pub const MAX_RELATIONS: i64 = 100;

/// A relation as one task sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RelationView {
    /// How this task relates to the other: it `blocks` it, is `blocked_by` it, ….
    pub relation: Relation,
    /// The other task.
    pub task_id: Uuid,
    pub title: String,
    pub status: String,
}

/// `POST /api/v1/tasks/{id}/relations`: this task `relation` task `task_id`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Relate {
    pub relation: Relation,
    pub task_id: Uuid,
}

/// Task `id`'s relations to tasks `identity` may see.
pub async fn list(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<Vec<RelationView>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let task = crate::service::tasks::visible_task(&mut conn, identity, id).await?;
    let rows =
        store::relations::of(&mut conn, task.id, identity.user_id, identity.is_admin()).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let stored = Stored {
                task_id: row.task_id,
                other_id: row.other_id,
                kind: match row.kind.as_str() {
                    "blocks" => "blocks",
                    "duplicates" => "duplicates",
                    _ => "relates_to",
                },
            };
            let (relation, other) = Relation::seen_from(&stored, task.id)?;
            Some(RelationView {
                relation,
                task_id: other,
                title: row.title,
                status: row.status,
            })
        })
        .collect())
}

/// The task `identity` may relate (they may change it, or it is assigned to them), and the
/// stored form of `relation` to `other`, which they must see.
async fn prepare(
    conn: &mut sqlx::PgConnection,
    identity: &Identity,
    id: &str,
    relation: Relation,
    other: Uuid,
) -> Result<(Uuid, Stored), TaskError> {
    let (task, access) = crate::service::tasks::visible(conn, identity, id, true).await?;
    if !access.edit && task.assignee_id != Some(identity.user_id) {
        return Err(TaskError::Forbidden(
            "only who may change the task, or its assignee, relates it to others".into(),
        ));
    }
    if other == task.id {
        return Err(TaskError::invalid(
            "invalid_relation",
            "a task cannot relate to itself",
        ));
    }
    if crate::service::tasks::visible(conn, identity, &other.to_string(), false)
        .await
        .is_err()
    {
        return Err(TaskError::invalid(
            "invalid_relation",
            "task_id names no task you can see",
        ));
    }
    Ok((task.id, relation.stored(task.id, other)))
}

/// Relates task `id` to another; `true` when the relation is new.
pub async fn relate(
    state: &AppState,
    identity: &Identity,
    id: &str,
    request: &Relate,
) -> Result<bool, TaskError> {
    let mut tx = state.pool.begin().await?;
    let (task, stored) = prepare(&mut tx, identity, id, request.relation, request.task_id).await?;
    if store::relations::count(&mut tx, task).await? >= MAX_RELATIONS {
        return Err(TaskError::invalid(
            "too_many_relations",
            "a task has at most 100 relations",
        ));
    }
    let new = store::relations::insert(&mut tx, &stored, identity.user_id).await?;
    tx.commit().await?;
    Ok(new)
}

/// Removes the relation `relation` between task `id` and `other`; 404 when there is none.
pub async fn unrelate(
    state: &AppState,
    identity: &Identity,
    id: &str,
    relation: &str,
    other: &str,
) -> Result<(), TaskError> {
    let relation: Relation = relation
        .parse()
        .map_err(|_| TaskError::NotFound("relation"))?;
    let other = Uuid::parse_str(other).map_err(|_| TaskError::NotFound("relation"))?;
    let mut tx = state.pool.begin().await?;
    let (_, stored) = prepare(&mut tx, identity, id, relation, other).await?;
    if !store::relations::delete(&mut tx, &stored).await? {
        return Err(TaskError::NotFound("relation"));
    }
    tx.commit().await?;
    Ok(())
}
