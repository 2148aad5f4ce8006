//! notify-svc's REST routes and their part of the API description.

pub mod notifications;
pub mod preferences;
pub mod unsubscribe;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every route (the webhooks' included) and the whole service's API description: each route is
/// declared once, by its handler's `#[utoipa::path]`.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(api_doc())
        .merge(notifications::router())
        .merge(preferences::router())
        .merge(unsubscribe::router())
        .merge(crate::webhooks::router())
        .split_for_parts()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "notifications", description = "In-app notifications, preferences and unsubscribe links"),
        (name = "webhooks", description = "Outgoing webhooks, signed as Standard Webhooks specifies")
    )
)]
struct NotifyDoc;

/// The service's tags and the webhooks' schemas; the operations come from [`router`].
fn api_doc() -> utoipa::openapi::OpenApi {
    let mut doc = <NotifyDoc as utoipa::OpenApi>::openapi();
    doc.merge(<crate::webhooks::ApiDoc as utoipa::OpenApi>::openapi());
    doc
}
