//! `GET /api/v1/users/me` and the public user representation.

use axum::{extract::State, routing::get, Json, Router};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, ApiError};
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/users/me", get(me))
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
}

async fn me(State(state): State<AppState>, identity: Identity) -> Result<Json<User>, ApiError> {
    let user: Option<User> =
        sqlx::query_as("SELECT id, email, display_name, role FROM users WHERE id = $1")
            .bind(identity.user_id)
            .fetch_optional(&state.pool)
            .await?;
    user.map(Json).ok_or_else(|| ApiError::not_found("user"))
}
