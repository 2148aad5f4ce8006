//! notify-svc's REST routes and their part of the API description.

pub mod notifications;
pub mod preferences;
pub mod unsubscribe;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(notifications::router())
        .merge(preferences::router())
        .merge(unsubscribe::router())
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        notifications::list,
        notifications::unread_count,
        notifications::mark_read,
        notifications::mark_all_read,
        notifications::delete,
        preferences::get_preferences,
        preferences::put_preferences,
        unsubscribe::unsubscribe_page,
        unsubscribe::unsubscribe,
    ),
    tags(
        (name = "notifications", description = "In-app notifications, preferences and unsubscribe links"),
        (name = "webhooks", description = "Outgoing webhooks, signed as Standard Webhooks specifies")
    )
)]
struct NotifyDoc;

/// The whole service's description: these routes and the webhooks'.
pub fn api_doc() -> utoipa::openapi::OpenApi {
    let mut doc = <NotifyDoc as utoipa::OpenApi>::openapi();
    doc.merge(<crate::webhooks::ApiDoc as utoipa::OpenApi>::openapi());
    doc
}
