//! In-app notifications: `GET /api/v1/notifications` (newest first, `unread` filter, cursor
//! pages), the unread count, mark one or all read, delete. A person only ever sees and touches
//! their own: another's is a 404.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{
    identity::Identity,
    paging::{next_after, Limit},
    problem::ProblemBody,
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::store::notifications::{self as store, Notification};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(unread_count))
        .routes(routes!(mark_all_read))
        .routes(routes!(mark_read))
        .routes(routes!(delete))
}

/// A page of notifications.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationList {
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The caller's unread notifications, all pages.
    pub unread: i64,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only unread ones.
    pub unread: Option<bool>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "The caller's notifications, newest first", body = NotificationList),
        (status = 400, description = "Bad filter or cursor", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<NotificationList>, ApiError> {
    let Query(query) = query?;
    let limit = Limit::new(50, 100).check(query.limit.map(i64::from))?;
    let before = match &query.cursor {
        Some(cursor) => Some(Uuid::parse_str(cursor).map_err(|_| {
            ApiError::bad_request("invalid_cursor", "cursor is not one this API gave")
        })?),
        None => None,
    };
    let mut items = store::page(
        &state.pool,
        identity.user_id,
        query.unread.unwrap_or(false),
        before,
        limit + 1,
    )
    .await?;
    let next_cursor = next_after(&mut items, limit, |n| n.id.to_string());
    let unread = store::unread_count(&state.pool, identity.user_id).await?;
    Ok(Json(NotificationList {
        items,
        next_cursor,
        unread,
    }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

#[utoipa::path(get, path = "/api/v1/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "How many of the caller's notifications are unread", body = UnreadCount)))]
pub async fn unread_count(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<UnreadCount>, ApiError> {
    let unread = store::unread_count(&state.pool, identity.user_id).await?;
    Ok(Json(UnreadCount { unread }))
}

#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Notification id")),
    responses((status = 204, description = "Read (also if it was already)"),
        (status = 400, description = "Not a notification id", body = ProblemBody),
        (status = 404, description = "No such notification of the caller's", body = ProblemBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    identity: Identity,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    if store::mark_read(&state.pool, identity.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("notification"))
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Marked {
    /// How many were unread.
    pub marked: u64,
}

#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "Every notification of the caller's is read", body = Marked)))]
pub async fn mark_all_read(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Marked>, ApiError> {
    let marked = store::mark_all_read(&state.pool, identity.user_id).await?;
    Ok(Json(Marked { marked }))
}

#[utoipa::path(delete, path = "/api/v1/notifications/{id}", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Notification id")),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Not a notification id", body = ProblemBody),
        (status = 404, description = "No such notification of the caller's", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    if store::delete(&state.pool, identity.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("notification"))
    }
}
