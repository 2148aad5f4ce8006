//! Channels: tasks shared with everyone who joined with the channel's code.
//!
//! `POST /api/v1/channels` (the answer carries the `join_code`), `GET /api/v1/channels` (mine),
//! `GET /api/v1/channels/{id}` (members only), `POST /api/v1/channels/join`,
//! `POST /api/v1/channels/{id}/leave`, and for the owner `POST /api/v1/channels/{id}/rotate-code`
//! and `DELETE /api/v1/channels/{id}/members/{user_id}`. A non-member gets 404 for any channel id;
//! only the owner ever sees the join code.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use shared::{
    events::{ChannelJoined, CloudEvent},
    identity::Identity,
    outbox,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{AppState, SERVICE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/channels", get(list).post(create))
        .route("/api/v1/channels/join", post(join))
        .route("/api/v1/channels/{id}", get(read))
        .route("/api/v1/channels/{id}/leave", post(leave))
        .route("/api/v1/channels/{id}/rotate-code", post(rotate_code))
        .route(
            "/api/v1/channels/{id}/members/{user_id}",
            delete(remove_member),
        )
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Channel {
    pub id: Uuid,
    pub name: String,
    pub owner_id: Uuid,
    /// Shown to the owner only.
    pub join_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub members: i64,
}

/// 10 characters from an alphabet without look-alikes: about 50 bits.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The channel as `identity` may see it; 404 for non-members and malformed ids.
async fn find(conn: &mut PgConnection, identity: &Identity, id: &str) -> Result<Channel, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("channel"))?;
    let channel: Option<Channel> = sqlx::query_as(
        "SELECT c.id, c.name, c.owner_id,
                CASE WHEN c.owner_id = $2 THEN c.join_code END AS join_code, c.created_at,
                (SELECT count(*) FROM channel_members m WHERE m.channel_id = c.id) AS members
           FROM channels c
          WHERE c.id = $1
            AND (EXISTS (SELECT 1 FROM channel_members m WHERE m.channel_id = c.id AND m.user_id = $2)
                 OR $3)",
    )
    .bind(id)
    .bind(identity.user_id)
    .bind(identity.is_admin())
    .fetch_optional(conn)
    .await?;
    channel.ok_or_else(|| ApiError::not_found("channel"))
}

fn owner_only(channel: &Channel, identity: &Identity) -> Result<(), ApiError> {
    if channel.owner_id == identity.user_id || identity.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the channel's owner can do this",
        ))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannel,
    responses((status = 201, description = "Created; the caller is its owner and first member", body = Channel),
        (status = 422, description = "Invalid name", body = ProblemBody)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateChannel>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "name must be 1 to 100 printable characters",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO channels (id, name, owner_id, join_code) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name)
        .bind(identity.user_id)
        .bind(new_code())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2)")
        .bind(id)
        .bind(identity.user_id)
        .execute(&mut *tx)
        .await?;
    let channel = find(&mut tx, &identity, &id.to_string()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub items: Vec<Channel>,
}

#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, description = "Channels the caller is a member of", body = ChannelList)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<ChannelList>, ApiError> {
    let items = sqlx::query_as(
        "SELECT c.id, c.name, c.owner_id,
                CASE WHEN c.owner_id = $1 THEN c.join_code END AS join_code, c.created_at,
                (SELECT count(*) FROM channel_members m2 WHERE m2.channel_id = c.id) AS members
           FROM channels c JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $1
          ORDER BY c.created_at DESC LIMIT 200",
    )
    .bind(identity.user_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(ChannelList { items }))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    responses((status = 200, description = "The channel", body = Channel),
        (status = 404, description = "No such channel, or not a member", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    find(&mut conn, &identity, &id).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinChannel {
    #[schema(min_length = 1, max_length = 64)]
    pub code: String,
}

#[utoipa::path(post, path = "/api/v1/channels/join", tag = "channels", security(("bearer" = [])), request_body = JoinChannel,
    responses((status = 200, description = "Joined (or already a member); channel.joined is published on joining", body = Channel),
        (status = 404, description = "No channel has this code", body = ProblemBody)))]
pub async fn join(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<JoinChannel>,
) -> Result<Json<Channel>, ApiError> {
    let code = request.code.trim().to_uppercase();
    // Codes are short and alphanumeric (`new_code`); anything else matches no channel, and is
    // not sent to the database (which refuses NUL characters outright).
    if code.is_empty() || code.len() > 64 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("channel with this code"));
    }
    let mut tx = state.pool.begin().await?;
    let found: Option<(Uuid, String, Uuid)> =
        sqlx::query_as("SELECT id, name, owner_id FROM channels WHERE join_code = $1")
            .bind(&code)
            .fetch_optional(&mut *tx)
            .await?;
    let (channel_id, channel_name, owner_id) =
        found.ok_or_else(|| ApiError::not_found("channel with this code"))?;
    let joined = sqlx::query(
        "INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(channel_id)
    .bind(identity.user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if joined == 1 {
        let event = ChannelJoined {
            channel_id,
            channel_name,
            owner_id,
            user_id: identity.user_id,
        };
        outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, event)).await?;
    }
    let channel = find(&mut tx, &identity, &channel_id.to_string()).await?;
    tx.commit().await?;
    state.cache.invalidate(&[identity.user_id]).await;
    Ok(Json(channel))
}

#[utoipa::path(post, path = "/api/v1/channels/{id}/leave", tag = "channels", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    responses((status = 204, description = "Left"),
        (status = 404, description = "No such channel, or not a member", body = ProblemBody),
        (status = 409, description = "The owner cannot leave", body = ProblemBody)))]
pub async fn leave(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let channel = find(&mut tx, &identity, &id).await?;
    if channel.owner_id == identity.user_id {
        return Err(ApiError::conflict(
            "owner_cannot_leave",
            "the owner cannot leave their channel",
        ));
    }
    sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
        .bind(channel.id)
        .bind(identity.user_id)
        .execute(&mut *tx)
        .await?;
    // Their jobs stop posting into the channel they left.
    let mut audience =
        crate::service::stop::stop_owned(&mut tx, &state.cache, identity.user_id, Some(channel.id))
            .await?;
    tx.commit().await?;
    audience.push(identity.user_id);
    state.cache.invalidate(&audience).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/channels/{id}/rotate-code", tag = "channels", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    responses((status = 200, description = "A new join code; the old one stops working", body = Channel),
        (status = 403, description = "Not the owner", body = ProblemBody),
        (status = 404, description = "No such channel, or not a member", body = ProblemBody)))]
pub async fn rotate_code(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let channel = find(&mut tx, &identity, &id).await?;
    owner_only(&channel, &identity)?;
    sqlx::query("UPDATE channels SET join_code = $2 WHERE id = $1")
        .bind(channel.id)
        .bind(new_code())
        .execute(&mut *tx)
        .await?;
    let channel = find(&mut tx, &identity, &id).await?;
    tx.commit().await?;
    Ok(Json(channel))
}

#[utoipa::path(delete, path = "/api/v1/channels/{id}/members/{user_id}", tag = "channels", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Channel id"), ("user_id" = uuid::Uuid, Path, description = "Member to remove")),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Not the owner", body = ProblemBody),
        (status = 404, description = "No such channel or member", body = ProblemBody),
        (status = 409, description = "The owner cannot be removed", body = ProblemBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    identity: Identity,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let channel = find(&mut tx, &identity, &id).await?;
    owner_only(&channel, &identity)?;
    let user_id = Uuid::parse_str(&user_id).map_err(|_| ApiError::not_found("member"))?;
    if user_id == channel.owner_id {
        return Err(ApiError::conflict(
            "owner_cannot_leave",
            "the owner cannot be removed from their channel",
        ));
    }
    let removed = sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
        .bind(channel.id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::not_found("member"));
    }
    // Their jobs stop posting into the channel they were removed from.
    let mut audience =
        crate::service::stop::stop_owned(&mut tx, &state.cache, user_id, Some(channel.id)).await?;
    tx.commit().await?;
    audience.push(user_id);
    state.cache.invalidate(&audience).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `user_id` is a member of `channel_id`, and who owns it (`None` if no such channel).
pub(crate) async fn membership(
    conn: &mut PgConnection,
    channel_id: Uuid,
    user_id: Uuid,
) -> Result<Option<(bool, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM channel_members WHERE channel_id = c.id AND user_id = $2),
                c.owner_id
           FROM channels c WHERE c.id = $1",
    )
    .bind(channel_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}
