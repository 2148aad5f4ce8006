//! `GET /api/v1/notifications`: the caller's in-app notifications, newest first.

use axum::{extract::State, routing::get, Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/notifications", get(list))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub subject: Option<String>,
    pub event_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationList {
    pub items: Vec<Notification>,
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "The caller's notifications, newest first", body = NotificationList),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<NotificationList>, ApiError> {
    let items = sqlx::query_as(
        "SELECT id, kind, title, body, subject, event_id, created_at, read_at
           FROM notifications WHERE user_id = $1
          ORDER BY created_at DESC, id DESC LIMIT 100",
    )
    .bind(identity.user_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(NotificationList { items }))
}
