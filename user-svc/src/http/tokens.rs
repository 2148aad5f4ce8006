//! Personal access tokens: the owner's `POST/GET /api/v1/tokens` and `DELETE /api/v1/tokens/{id}`
//! (a signed-in session only: a token never makes or lists tokens), the admins'
//! `GET /api/v1/admin/tokens` and `DELETE /api/v1/admin/tokens/{id}`, and for the gateway
//! `POST /internal/v1/tokens/verify` ([`shared::access_tokens::VERIFY_PATH`]).

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::post,
    Extension, Json,
};
use serde::Deserialize;
use shared::{
    access_tokens::{Grant, TokenQuery, VERIFY_PATH},
    identity::Identity,
    internal::Caller,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    domain::tokens::{CreatedToken, NewToken, TokenInfo},
    service::tokens,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
        .routes(routes!(admin_list))
        .routes(routes!(admin_revoke))
        .route(VERIFY_PATH, post(verify))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = NewToken,
    responses((status = 201, description = "The token, shown this once (only its hash is kept)", body = CreatedToken),
        (status = 400, description = "Malformed body, or an unknown scope", body = ProblemBody),
        (status = 403, description = "Asked with a personal access token (`session_required`)", body = ProblemBody),
        (status = 409, description = "The caller has 50 live tokens (`too_many_tokens`)", body = ProblemBody),
        (status = 422, description = "A bad name, scope (`admin` for a non-admin) or lifetime", body = ProblemBody)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    identity.require_session()?;
    let created = tokens::create(&state, &identity, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, description = "The caller's unrevoked tokens, newest first (never the tokens themselves)", body = Vec<TokenInfo>),
        (status = 403, description = "Asked with a personal access token (`session_required`)", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    identity.require_session()?;
    Ok(Json(tokens::list(&state, Some(identity.user_id)).await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 204, description = "Revoked: refused from the next request on, on every gateway"),
        (status = 403, description = "Asked with a personal access token (`session_required`)", body = ProblemBody),
        (status = 404, description = "No such unrevoked token of the caller's", body = ProblemBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    identity.require_session()?;
    tokens::revoke(&state, id, Some(identity.user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminListQuery {
    /// Only this user's tokens.
    pub user_id: Option<Uuid>,
}

#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "admin", security(("bearer" = [])),
    params(AdminListQuery),
    responses((status = 200, description = "Unrevoked tokens (of one user, or everyone's), newest first, at most 1,000", body = Vec<TokenInfo>),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn admin_list(
    State(state): State<AppState>,
    identity: Identity,
    Query(query): Query<AdminListQuery>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    identity.require_admin()?;
    Ok(Json(tokens::list(&state, query.user_id).await?))
}

#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 204, description = "Revoked at once on every gateway"),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such unrevoked token", body = ProblemBody)))]
pub async fn admin_revoke(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    identity.require_admin()?;
    tokens::revoke(&state, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whom a live token stands for: the gateway's alone.
async fn verify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(query): Json<TokenQuery>,
) -> Result<Json<Grant>, ApiError> {
    caller.require_gateway_itself("the gateway's token check")?;
    Ok(Json(tokens::verify(&state, &query.token_hash).await?))
}
