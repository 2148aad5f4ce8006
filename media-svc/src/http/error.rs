//! The one place media-svc's errors become problem documents.

use axum::http::StatusCode;
use shared::ApiError;

use crate::service::{links::LinkError, Error};

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let detail = err.to_string();
        let status = |s: StatusCode, code: &'static str| ApiError::new(s, code, detail.clone());
        match err {
            Error::NotFound => ApiError::not_found("file or task"),
            Error::Forbidden => status(StatusCode::FORBIDDEN, "forbidden"),
            Error::TooLarge { .. } => status(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large"),
            Error::QuotaExceeded { .. } => status(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
            Error::Name(_) => status(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file_name"),
            Error::TypeNotAllowed(_) => {
                status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_not_allowed")
            }
            Error::ActiveContent(_) => {
                status(StatusCode::UNSUPPORTED_MEDIA_TYPE, "active_content_refused")
            }
            Error::TypeMismatch { .. } => {
                status(StatusCode::UNPROCESSABLE_ENTITY, "file_type_mismatch")
            }
            Error::Polyglot(_) => status(StatusCode::UNPROCESSABLE_ENTITY, "suspicious_content"),
            Error::ImageTooLarge { .. } => {
                status(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large")
            }
            Error::Empty => status(StatusCode::UNPROCESSABLE_ENTITY, "empty_file"),
            Error::BadRequest(_) => status(StatusCode::BAD_REQUEST, "invalid_upload"),
            Error::Link(LinkError::Expired) => status(StatusCode::FORBIDDEN, "link_expired"),
            Error::Link(LinkError::Invalid) => status(StatusCode::FORBIDDEN, "invalid_link"),
            Error::TasksUnavailable(e) => {
                tracing::warn!(error = %e, "task-svc unavailable");
                ApiError::unavailable("task-svc")
            }
            Error::Store(e) => {
                tracing::warn!(error = %e, "object store unavailable");
                ApiError::unavailable("the object store")
            }
            Error::Db(e) => e.into(),
            Error::Unknown(e) => shared::db::CommitError::Unknown(e).into(),
            Error::Event(e) => ApiError::internal(e),
        }
    }
}

/// The error of the `index`th file of an upload (from 1), its name in the detail.
pub fn for_file(err: Error, index: usize, name: &str) -> ApiError {
    let mut api: ApiError = err.into();
    if let Some(detail) = api.detail.take() {
        api.detail = Some(format!("file {index} ({name:?}): {detail}"));
    }
    api
}
