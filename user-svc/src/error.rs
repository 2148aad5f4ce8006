//! The one error of user-svc's domain and service layers, mapped once to problem+json.

use axum::http::StatusCode;
use shared::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A request the API cannot read: 400 with `code`.
    #[error("{detail}")]
    Malformed { code: &'static str, detail: String },
    /// Input that breaks a rule (an address, a name, a weak password): 422 with `code`.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// The account's state refuses it (the email is taken, an admin's own account): 409.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// No such thing: 404.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Not signed in, or credentials or a refresh token that do not hold: 401 with `code`.
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    /// Signed in, but refused (a wrong current password): 403 with `code`.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// Too many login attempts from here: 429 with `Retry-After` (seconds).
    #[error("too many login attempts; retry after {retry_after} s")]
    Throttled { retry_after: u64 },
    /// Asked again too soon (a new verification link within a minute): 429 with `Retry-After`.
    #[error("asked again too soon; retry after {retry_after} s")]
    TooSoon { retry_after: u64 },
    /// A dependency other than the database is down: 503.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// The database failed (or is unreachable: 503).
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// Anything else (hashing, signing): 500, logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl UserError {
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

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            detail: detail.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> Self {
        match err {
            UserError::Malformed { code, detail } => ApiError::bad_request(code, detail),
            UserError::Invalid { code, detail } => ApiError::unprocessable(code, detail),
            UserError::Conflict { code, detail } => ApiError::conflict(code, detail),
            UserError::NotFound(what) => ApiError::not_found(what),
            UserError::Unauthorized { code, detail } => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
            }
            UserError::Forbidden { code, detail } => {
                ApiError::new(StatusCode::FORBIDDEN, code, detail)
            }
            UserError::Throttled { retry_after } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_login_attempts",
                "too many login attempts from here; try again later",
            )
            .with_retry_after(retry_after),
            UserError::TooSoon { retry_after } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_soon",
                format!("a link was sent less than a minute ago; try again in {retry_after} s"),
            )
            .with_retry_after(retry_after),
            UserError::Unavailable(dependency) => ApiError::unavailable(dependency),
            UserError::Store(err) => err.into(),
            UserError::Internal(err) => ApiError::internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn each_error_maps_once_to_a_status_and_a_code() {
        let answer = |e: UserError| ApiError::from(e);
        let taken = answer(UserError::conflict("email_taken", "x"));
        assert_eq!(
            (taken.status, taken.code),
            (StatusCode::CONFLICT, "email_taken")
        );
        let wrong = answer(UserError::unauthorized("invalid_credentials", "x"));
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer(UserError::NotFound("user")).status,
            StatusCode::NOT_FOUND
        );
        let throttled = answer(UserError::Throttled { retry_after: 4 }).into_response();
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(throttled.headers()["retry-after"], "4");
        assert_eq!(
            answer(UserError::Unavailable("redis")).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let internal = answer(UserError::Internal(anyhow::anyhow!("secret cause")));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(internal.detail, None);
    }
}
