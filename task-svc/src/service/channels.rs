//! Channels: create, list, read, join by code, leave, rotate the code, remove a member. A
//! non-member gets 404 for any channel id; only the owner ever sees the join code. A member who
//! leaves or is removed has their jobs in the channel stopped.

use shared::{
    events::{ChannelJoined, CloudEvent},
    identity::Identity,
    outbox,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::channel::{new_code, owner_only, parse_code, parse_name, Channel, Member},
    error::TaskError,
    service::stop::stop_owned,
    store, AppState, SERVICE,
};

/// The channel as `identity` may see it; 404 for non-members and malformed ids.
async fn find(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
) -> Result<Channel, TaskError> {
    let id = Uuid::parse_str(id).map_err(|_| TaskError::NotFound("channel"))?;
    store::channels::find(conn, id, identity.user_id, identity.is_admin())
        .await?
        .ok_or(TaskError::NotFound("channel"))
}

/// A new channel named `name`; the caller is its owner and first member.
pub async fn create(
    state: &AppState,
    identity: &Identity,
    name: &str,
) -> Result<Channel, TaskError> {
    let name = parse_name(name)?;
    let mut tx = state.pool.begin().await?;
    let id = Uuid::now_v7();
    store::channels::create(&mut tx, id, &name, identity.user_id, &new_code()).await?;
    let channel = find(&mut tx, identity, &id.to_string()).await?;
    tx.commit().await?;
    Ok(channel)
}

/// The channels `identity` is a member of.
pub async fn list(state: &AppState, identity: &Identity) -> Result<Vec<Channel>, TaskError> {
    Ok(store::channels::list(&state.pool, identity.user_id).await?)
}

pub async fn read(state: &AppState, identity: &Identity, id: &str) -> Result<Channel, TaskError> {
    let mut conn = state.pool.acquire().await?;
    find(&mut conn, identity, id).await
}

/// The members of channel `id`, for its members (404 for anyone else).
pub async fn members(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<Vec<Member>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let channel = find(&mut conn, identity, id).await?;
    Ok(store::channels::members(&mut conn, channel.id).await?)
}

/// Joins the channel with join code `code` (or stays a member); `channel.joined` on joining.
pub async fn join(state: &AppState, identity: &Identity, code: &str) -> Result<Channel, TaskError> {
    let code = parse_code(code).ok_or(TaskError::NotFound("channel with this code"))?;
    let mut tx = state.pool.begin().await?;
    let (channel_id, channel_name, owner_id) = store::channels::by_code(&mut tx, &code)
        .await?
        .ok_or(TaskError::NotFound("channel with this code"))?;
    if store::channels::add_member(&mut tx, channel_id, identity.user_id).await? {
        let event = ChannelJoined {
            channel_id,
            channel_name,
            owner_id,
            user_id: identity.user_id,
        };
        outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, event)).await?;
    }
    let channel = find(&mut tx, identity, &channel_id.to_string()).await?;
    tx.commit().await?;
    state.cache.invalidate(&[identity.user_id]).await;
    Ok(channel)
}

/// `identity` leaves channel `id` (its owner cannot); their jobs stop posting into it.
pub async fn leave(state: &AppState, identity: &Identity, id: &str) -> Result<(), TaskError> {
    let mut tx = state.pool.begin().await?;
    let channel = find(&mut tx, identity, id).await?;
    if channel.owner_id == identity.user_id {
        return Err(TaskError::conflict(
            "owner_cannot_leave",
            "the owner cannot leave their channel",
        ));
    }
    store::channels::remove_member(&mut tx, channel.id, identity.user_id).await?;
    let mut audience =
        stop_owned(&mut tx, &state.cache, identity.user_id, Some(channel.id)).await?;
    tx.commit().await?;
    audience.push(identity.user_id);
    state.cache.invalidate(&audience).await;
    Ok(())
}

/// A new join code for channel `id` (its owner); the old one stops working.
pub async fn rotate_code(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<Channel, TaskError> {
    let mut tx = state.pool.begin().await?;
    let channel = find(&mut tx, identity, id).await?;
    owner_only(&channel, identity)?;
    store::channels::set_code(&mut tx, channel.id, &new_code()).await?;
    let channel = find(&mut tx, identity, id).await?;
    tx.commit().await?;
    Ok(channel)
}

/// Channel `id`'s owner removes member `user_id` (not themselves); the member's jobs stop
/// posting into it.
pub async fn remove_member(
    state: &AppState,
    identity: &Identity,
    id: &str,
    user_id: &str,
) -> Result<(), TaskError> {
    let mut tx = state.pool.begin().await?;
    let channel = find(&mut tx, identity, id).await?;
    owner_only(&channel, identity)?;
    let user_id = Uuid::parse_str(user_id).map_err(|_| TaskError::NotFound("member"))?;
    if user_id == channel.owner_id {
        return Err(TaskError::conflict(
            "owner_cannot_leave",
            "the owner cannot be removed from their channel",
        ));
    }
    if !store::channels::remove_member(&mut tx, channel.id, user_id).await? {
        return Err(TaskError::NotFound("member"));
    }
    let mut audience = stop_owned(&mut tx, &state.cache, user_id, Some(channel.id)).await?;
    tx.commit().await?;
    audience.push(user_id);
    state.cache.invalidate(&audience).await;
    Ok(())
}
