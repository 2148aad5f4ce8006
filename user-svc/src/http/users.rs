//! The user resource: `GET/PATCH /api/v1/users/me`, `POST /api/v1/users/me/password` and
//! `/verify-email`, and the
//! admin routes `GET /api/v1/users`, `GET/PATCH/DELETE /api/v1/users/{id}`; anyone's
//! `GET /api/v1/users/by-email` (an exact address, for the gateway's person search).

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{
    identity::{Identity, Role},
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domain::account::User,
    service::{accounts, verification},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(resend_verification))
        .routes(routes!(list))
        .routes(routes!(by_email))
        .routes(routes!(read, admin_update, delete))
}

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The caller's profile", body = User),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn me(State(state): State<AppState>, identity: Identity) -> Result<Json<User>, ApiError> {
    Ok(Json(accounts::find(&state, identity.user_id).await?))
}

/// What a user may change about themselves: only their display name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, description = "Updated profile", body = User),
        (status = 400, description = "Malformed body or a field that cannot be set", body = ProblemBody),
        (status = 422, description = "Invalid display name", body = ProblemBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<UpdateMe>,
) -> Result<Json<User>, ApiError> {
    let name = request.display_name.as_deref();
    Ok(Json(
        accounts::update_own(&state, identity.user_id, name).await?,
    ))
}

/// Mails the caller a new verification link (the earlier one stops working).
#[utoipa::path(post, path = "/api/v1/users/me/verify-email", tag = "users", security(("bearer" = [])),
    responses((status = 202, description = "A new link is on its way"),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 409, description = "Already verified", body = ProblemBody),
        (status = 429, description = "A link went out less than a minute ago; see Retry-After", body = ProblemBody)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<StatusCode, ApiError> {
    verification::resend(&state, identity.user_id).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password and ends every other session.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "users", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204, description = "Changed; every other session ended"),
        (status = 403, description = "Wrong current password", body = ProblemBody),
        (status = 422, description = "Weak new password", body = ProblemBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    accounts::change_password(
        &state,
        identity.user_id,
        identity.session_id,
        request.current_password,
        request.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub offset: u32,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserList {
    pub items: Vec<User>,
    pub offset: u32,
    pub limit: u32,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "admin", security(("bearer" = [])),
    params(("offset" = Option<u32>, Query, description = "Rows to skip"), ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, description = "Users", body = UserList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UserList>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let (items, limit) = accounts::list(&state, query.offset, query.limit).await?;
    Ok(Json(UserList {
        items,
        offset: query.offset,
        limit,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ByEmail {
    /// The whole address (letter case aside).
    pub email: String,
}

/// A person found by their exact address: no more than a name.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Person {
    pub id: Uuid,
    pub display_name: String,
    pub active: bool,
}

#[utoipa::path(get, path = "/api/v1/users/by-email", tag = "users", security(("bearer" = [])), params(ByEmail),
    responses((status = 200, description = "The active person with exactly this address", body = Person),
        (status = 400, description = "No email given", body = ProblemBody),
        (status = 404, description = "No active person has this address", body = ProblemBody)))]
pub async fn by_email(
    State(state): State<AppState>,
    _identity: Identity,
    query: Result<Query<ByEmail>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Person>, ApiError> {
    let Query(query) = query?;
    let user = accounts::by_email(&state, &query.email).await?;
    Ok(Json(Person {
        id: user.id,
        display_name: user.display_name,
        active: user.active,
    }))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("user"))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such user", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    identity.require_admin()?;
    Ok(Json(accounts::find(&state, parse_id(&id)?).await?))
}

/// What an admin may change about a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdate {
    pub role: Option<Role>,
    pub active: Option<bool>,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])), request_body = AdminUpdate,
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "Updated; deactivation or a role change signs the user out", body = User),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such user", body = ProblemBody),
        (status = 409, description = "An admin's own role or state", body = ProblemBody),
        (status = 422, description = "Invalid display name", body = ProblemBody)))]
pub async fn admin_update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<AdminUpdate>,
) -> Result<Json<User>, ApiError> {
    identity.require_admin()?;
    let user = accounts::admin_update(
        &state,
        identity.user_id,
        parse_id(&id)?,
        request.display_name.as_deref(),
        request.role,
        request.active,
    )
    .await?;
    Ok(Json(user))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 204, description = "Deleted; sessions ended"),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such user", body = ProblemBody),
        (status = 409, description = "An admin's own account", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    identity.require_admin()?;
    accounts::delete(&state, identity.user_id, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
