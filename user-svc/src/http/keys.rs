//! Admin operations on signing keys: `GET /api/v1/admin/keys`, `POST /api/v1/admin/keys/rotate`,
//! `POST /api/v1/admin/keys/{kid}/retire` (see [`crate::domain::keys`] for rotation without
//! downtime).

use axum::{
    extract::{Path, State},
    Json,
};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{domain::keys::KeyList, service::keys, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(rotate))
        .routes(routes!(retire))
}

#[utoipa::path(get, path = "/api/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Signing keys", body = KeyList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<KeyList>, ApiError> {
    identity.require_admin()?;
    Ok(Json(keys::list(&state).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "A new key signs from now on; the old stays published", body = KeyList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<KeyList>, ApiError> {
    identity.require_admin()?;
    Ok(Json(keys::rotate(&state).await?))
}

#[utoipa::path(post, path = "/api/v1/admin/keys/{kid}/retire", tag = "admin", security(("bearer" = [])),
    params(("kid" = String, Path, description = "Key id")),
    responses((status = 200, description = "Retired; its tokens are refused", body = KeyList),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such active key", body = ProblemBody),
        (status = 409, description = "The signing key cannot be retired", body = ProblemBody)))]
pub async fn retire(
    State(state): State<AppState>,
    identity: Identity,
    Path(kid): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    identity.require_admin()?;
    Ok(Json(keys::retire(&state, &kid).await?))
}
