//! The one error of task-svc's domain and service layers. It is mapped once to problem+json
//! ([`ApiError`], for handlers) and once to a consumer's retry, reject or wait
//! ([`HandlerError`]).

use shared::{consumer::HandlerError, ApiError};

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Input that breaks a rule: 422 with `code`; a consumer rejects it.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// The task's state refuses the change: 409 with `code`; a consumer rejects it.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// A dependency other than the database is down: 503; a consumer retries.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// The database failed (or is unreachable: 503, and a consumer waits for it).
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

impl TaskError {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }
}

impl From<TaskError> for ApiError {
    fn from(err: TaskError) -> Self {
        match err {
            TaskError::Invalid { code, detail } => ApiError::unprocessable(code, detail),
            TaskError::Conflict { code, detail } => ApiError::conflict(code, detail),
            TaskError::Unavailable(dependency) => ApiError::unavailable(dependency),
            TaskError::Store(err) => err.into(),
        }
    }
}

impl From<TaskError> for HandlerError {
    fn from(err: TaskError) -> Self {
        match err {
            TaskError::Store(err) => err.into(),
            TaskError::Unavailable(_) => HandlerError::Retry(err.into()),
            TaskError::Invalid { .. } | TaskError::Conflict { .. } => {
                HandlerError::Reject(err.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{http::StatusCode, response::IntoResponse};

    #[test]
    fn each_error_maps_once_to_a_status_and_a_consumer_decision() {
        let status = |e: TaskError| ApiError::from(e).into_response().status();
        assert_eq!(
            status(TaskError::invalid("invalid_job", "x")),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status(TaskError::conflict("already_finished", "x")),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(TaskError::Unavailable("rabbitmq")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(matches!(
            HandlerError::from(TaskError::invalid("invalid_job", "x")),
            HandlerError::Reject(_)
        ));
        assert!(matches!(
            HandlerError::from(TaskError::Unavailable("rabbitmq")),
            HandlerError::Retry(_)
        ));
    }
}
