//! media-svc's REST routes and their part of the API description.

pub mod admin;
pub mod attachments;
pub mod error;
pub mod files;
pub mod multipart;
pub mod views;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every route and the API description of all of them: each route is declared once, by its
/// handler's `#[utoipa::path]`.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(attachments::router())
        .merge(files::router())
        .merge(admin::router())
        .split_for_parts()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    tags((name = "media", description = "Files attached to tasks: uploads, downloads, signed links, thumbnails"))
)]
pub struct ApiDoc;
