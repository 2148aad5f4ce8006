//! Labels: anyone keeps their own; a channel's members add labels to it, its owner recolours
//! or deletes them. Deleting a label leaves its tag on tasks (only the colour goes).

use shared::identity::Identity;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::label::{parse_color, parse_name, CreateLabel, Label, MAX_LABELS},
    error::TaskError,
    store, AppState,
};

/// The labels `identity` sees: their own and their channels'.
pub async fn list(state: &AppState, identity: &Identity) -> Result<Vec<Label>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    Ok(store::labels::visible(&mut conn, identity.user_id).await?)
}

pub async fn create(
    state: &AppState,
    identity: &Identity,
    request: CreateLabel,
) -> Result<Label, TaskError> {
    let name = parse_name(&request.name)?;
    let color = parse_color(&request.color)?;
    let mut tx = state.pool.begin().await?;
    let owner = match request.channel_id {
        Some(channel) => {
            let membership =
                store::channels::membership(&mut tx, channel, identity.user_id).await?;
            if !membership.is_some_and(|(member, _)| member) {
                return Err(TaskError::NotFound("channel"));
            }
            None
        }
        None => Some(identity.user_id),
    };
    if store::labels::count(&mut tx, owner, request.channel_id).await? >= MAX_LABELS {
        return Err(TaskError::invalid(
            "too_many_labels",
            "at most 100 labels each",
        ));
    }
    let label = store::labels::insert(&mut tx, &name, &color, owner, request.channel_id)
        .await?
        .ok_or_else(|| {
            TaskError::conflict("label_exists", format!("a label “{name}” exists there"))
        })?;
    tx.commit().await?;
    Ok(label)
}

/// Label `id` if `identity` may change it: their own, or a channel's they own.
async fn changeable(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
) -> Result<Label, TaskError> {
    let id = Uuid::parse_str(id).map_err(|_| TaskError::NotFound("label"))?;
    let (label, owner) = store::labels::find(conn, id, identity.user_id)
        .await?
        .ok_or(TaskError::NotFound("label"))?;
    let mine = match label.channel_id {
        Some(channel) => store::channels::membership(conn, channel, identity.user_id)
            .await?
            .is_some_and(|(_, channel_owner)| channel_owner == identity.user_id),
        None => owner == Some(identity.user_id),
    };
    if !mine {
        return Err(TaskError::Forbidden(
            "only the channel's owner changes its labels".into(),
        ));
    }
    Ok(label)
}

pub async fn recolor(
    state: &AppState,
    identity: &Identity,
    id: &str,
    color: &str,
) -> Result<Label, TaskError> {
    let color = parse_color(color)?;
    let mut tx = state.pool.begin().await?;
    let label = changeable(&mut tx, identity, id).await?;
    let label = store::labels::set_color(&mut tx, label.id, &color).await?;
    tx.commit().await?;
    Ok(label)
}

pub async fn delete(state: &AppState, identity: &Identity, id: &str) -> Result<(), TaskError> {
    let mut tx = state.pool.begin().await?;
    let label = changeable(&mut tx, identity, id).await?;
    store::labels::delete(&mut tx, label.id).await?;
    tx.commit().await?;
    Ok(())
}
