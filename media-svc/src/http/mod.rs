//! media-svc's REST routes and their part of the API description.

pub mod admin;
pub mod attachments;
pub mod error;
pub mod files;
pub mod multipart;
pub mod views;

use axum::Router;

use crate::AppState;

/// The routes whose bodies are files: no overall time limit but `files.transfer_timeout_secs`.
pub fn transfers() -> Router<AppState> {
    Router::new()
        .merge(attachments::router())
        .merge(files::router())
}

pub fn rest() -> Router<AppState> {
    admin::router()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        attachments::upload,
        attachments::list,
        files::mine,
        files::read,
        files::delete,
        files::content,
        files::link,
        admin::sweep,
    ),
    tags((name = "media", description = "Files attached to tasks: uploads, downloads, signed links, thumbnails"))
)]
pub struct ApiDoc;
