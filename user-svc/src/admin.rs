//! Admin operations on signing keys: `GET /api/v1/admin/keys`, `POST /api/v1/admin/keys/rotate`,
//! `POST /api/v1/admin/keys/{kid}/retire`.
//!
//! Rotation without downtime: rotate adds a key that signs from now on while the previous one
//! stays published, so tokens it signed keep verifying; once they have expired (15 minutes),
//! retire the old key and the gateway refuses anything still signed with it.

use axum::{
    extract::{Path, State},
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};

use crate::{keys, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/keys", get(list))
        .route("/api/v1/admin/keys/rotate", post(rotate))
        .route("/api/v1/admin/keys/{kid}/retire", post(retire))
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyList {
    /// The key that signs new tokens.
    pub signing: String,
    pub items: Vec<KeyInfo>,
}

#[utoipa::path(get, path = "/api/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Signing keys", body = KeyList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<KeyList>, ApiError> {
    identity.require_admin()?;
    key_list(&state).await.map(Json)
}

async fn key_list(state: &AppState) -> Result<KeyList, ApiError> {
    let items = sqlx::query_as(
        "SELECT kid, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid DESC",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(KeyList {
        signing: state.keys.read().await.kid.clone(),
        items,
    })
}

async fn reload(state: &AppState) -> Result<(), ApiError> {
    let fresh = keys::Keys::load(&state.pool)
        .await
        .map_err(ApiError::internal)?;
    *state.keys.write().await = fresh;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/admin/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "A new key signs from now on; the old stays published", body = KeyList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<KeyList>, ApiError> {
    identity.require_admin()?;
    keys::create(&state.pool)
        .await
        .map_err(ApiError::internal)?;
    reload(&state).await?;
    key_list(&state).await.map(Json)
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
    let mut tx = state.pool.begin().await?;
    let active: Vec<String> = sqlx::query_scalar(
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL
          ORDER BY created_at DESC, kid DESC FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    if !active.contains(&kid) {
        return Err(ApiError::not_found("active key"));
    }
    if active.first() == Some(&kid) {
        return Err(ApiError::conflict(
            "signing_key",
            "this key signs new tokens; rotate first, then retire it",
        ));
    }
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE kid = $1")
        .bind(&kid)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    reload(&state).await?;
    key_list(&state).await.map(Json)
}
