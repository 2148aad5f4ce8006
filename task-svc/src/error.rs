//! The one error of task-svc's domain and service layers. It is mapped once to problem+json
//! ([`ApiError`], for handlers) and once to a consumer's retry, reject or wait
//! ([`HandlerError`]).

use axum::http::StatusCode;
use shared::{consumer::HandlerError, ApiError};

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A request the API cannot read (a bad cursor, an unknown sort): 400 with `code`.
    #[error("{detail}")]
    Malformed { code: &'static str, detail: String },
    /// Input that breaks a rule: 422 with `code`; a consumer rejects it.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// The task's state refuses the change: 409 with `code`; a consumer rejects it.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// No such thing visible to the caller: 404 (never 403, so ids do not leak).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Visible, but the caller may not do this: 403.
    #[error("{0}")]
    Forbidden(String),
    /// A personal access token without this scope: 403 `insufficient_scope` naming it.
    #[error("this token lacks the scope `{0}`")]
    MissingScope(shared::scopes::Scope),
    /// `If-Match` named another version: 412, nothing changed.
    #[error("the task changed meanwhile; its current ETag is {current}")]
    Stale { current: String },
    /// A member's quota would be passed: 429 `quota_exceeded`, nothing created.
    #[error("{0}")]
    Quota(String),
    /// A dependency other than the database is down: 503; a consumer holds the message until
    /// it is back.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// The database failed (or is unreachable: 503, and a consumer waits for it).
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// A COMMIT failed, or its outcome is unknown (504 `outcome_unknown`: not to be retried
    /// blindly).
    #[error(transparent)]
    Commit(#[from] shared::db::CommitError),
    /// About the `index`th task of a bulk request: the detail names it (`tasks[3]: ...`).
    #[error("tasks[{index}]: {error}")]
    InTask { index: usize, error: Box<TaskError> },
}

impl TaskError {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn malformed(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            code,
            detail: detail.into(),
        }
    }

    /// This error, about the `index`th task of a bulk request.
    pub fn in_task(self, index: usize) -> Self {
        Self::InTask {
            index,
            error: Box::new(self),
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
            TaskError::Malformed { code, detail } => ApiError::bad_request(code, detail),
            TaskError::Invalid { code, detail } => ApiError::unprocessable(code, detail),
            TaskError::Conflict { code, detail } => ApiError::conflict(code, detail),
            TaskError::NotFound(what) => ApiError::not_found(what),
            TaskError::Forbidden(detail) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
            }
            TaskError::MissingScope(scope) => shared::scopes::insufficient(scope),
            err @ TaskError::Stale { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "stale_version",
                err.to_string(),
            ),
            TaskError::Quota(detail) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", detail)
            }
            TaskError::Unavailable(dependency) => ApiError::unavailable(dependency),
            TaskError::Store(err) => err.into(),
            TaskError::Commit(err) => err.into(),
            TaskError::InTask { index, error } => {
                let mut answer = ApiError::from(*error);
                answer.detail = Some(format!(
                    "tasks[{index}]: {}",
                    answer.detail.unwrap_or_default()
                ));
                answer
            }
        }
    }
}

impl From<TaskError> for HandlerError {
    fn from(err: TaskError) -> Self {
        match err {
            TaskError::Store(err) | TaskError::Commit(shared::db::CommitError::Failed(err)) => {
                err.into()
            }
            TaskError::Commit(_) => HandlerError::Retry(err.into()),
            TaskError::InTask { error, .. } => (*error).into(),
            // Held until the dependency is back, without spending the message's attempts.
            TaskError::Unavailable(_) => HandlerError::Unavailable(err.into()),
            TaskError::Malformed { .. }
            | TaskError::Invalid { .. }
            | TaskError::Conflict { .. }
            | TaskError::NotFound(_)
            | TaskError::Forbidden(_)
            | TaskError::MissingScope(_)
            | TaskError::Stale { .. }
            | TaskError::Quota(_) => HandlerError::Reject(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

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
        assert_eq!(status(TaskError::NotFound("task")), StatusCode::NOT_FOUND);
        assert_eq!(
            status(TaskError::Forbidden("x".into())),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(TaskError::Stale {
                current: "\"2\"".into()
            }),
            StatusCode::PRECONDITION_FAILED
        );
        let named = ApiError::from(TaskError::NotFound("channel").in_task(3));
        assert_eq!(named.status, StatusCode::NOT_FOUND);
        assert_eq!(named.detail.as_deref(), Some("tasks[3]: channel not found"));
        assert!(matches!(
            HandlerError::from(TaskError::invalid("invalid_job", "x")),
            HandlerError::Reject(_)
        ));
        assert!(matches!(
            HandlerError::from(TaskError::Unavailable("rabbitmq")),
            HandlerError::Unavailable(_)
        ));
    }
}
