//! Channels over HTTP: `POST /api/v1/channels` (the answer carries the `join_code`),
//! `GET /api/v1/channels` (mine), `GET /api/v1/channels/{id}` (members only),
//! `GET /api/v1/channels/{id}/members` (members only), `POST /api/v1/channels/join`,
//! `POST /api/v1/channels/{id}/leave`, and for the owner
//! `POST /api/v1/channels/{id}/rotate-code` and `DELETE /api/v1/channels/{id}/members/{user_id}`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::channel::{Channel, CreateChannel, JoinChannel, Member},
    service::channels,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(join))
        .routes(routes!(read))
        .routes(routes!(members))
        .routes(routes!(leave))
        .routes(routes!(rotate_code))
        .routes(routes!(remove_member))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelList {
    pub items: Vec<Channel>,
}

#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannel,
    responses((status = 201, description = "Created; the caller is its owner and first member", body = Channel),
        (status = 422, description = "Invalid name", body = ProblemBody)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateChannel>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let channel = channels::create(&state, &identity, &request.name).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, description = "Channels the caller is a member of", body = ChannelList)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<ChannelList>, ApiError> {
    let items = channels::list(&state, &identity).await?;
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
    Ok(Json(channels::read(&state, &identity, &id).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberList {
    /// The owner first, then the others by name; at most 500.
    pub items: Vec<Member>,
}

#[utoipa::path(get, path = "/api/v1/channels/{id}/members", tag = "channels", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Channel id")),
    responses((status = 200, description = "The channel's members: the owner first, then the others by name (at most 500)", body = MemberList),
        (status = 404, description = "No such channel, or not a member", body = ProblemBody)))]
pub async fn members(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<MemberList>, ApiError> {
    let items = channels::members(&state, &identity, &id).await?;
    Ok(Json(MemberList { items }))
}

#[utoipa::path(post, path = "/api/v1/channels/join", tag = "channels", security(("bearer" = [])), request_body = JoinChannel,
    responses((status = 200, description = "Joined (or already a member); channel.joined is published on joining", body = Channel),
        (status = 404, description = "No channel has this code", body = ProblemBody)))]
pub async fn join(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<JoinChannel>,
) -> Result<Json<Channel>, ApiError> {
    Ok(Json(
        channels::join(&state, &identity, &request.code).await?,
    ))
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
    channels::leave(&state, &identity, &id).await?;
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
    Ok(Json(channels::rotate_code(&state, &identity, &id).await?))
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
    channels::remove_member(&state, &identity, &id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
