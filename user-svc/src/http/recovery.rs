//! Account mail over HTTP: a password reset by email (`POST /api/v1/auth/password-reset`, then
//! `/password-reset/confirm` with the mailed token) and a change of address confirmed from the
//! new one (`POST /api/v1/users/me/email`, then the mailed link's `/api/v1/auth/verify-email`).

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    service::{recovery, verification},
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
        .routes(routes!(change_email))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(max_length = 320)]
    pub email: String,
}

/// Mails the account with this address, if there is an active one, a link to set a new
/// password (valid for an hour; at most one a minute). The answer is the same either way.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202, description = "If an active account has this address, a link is on its way"),
        (status = 400, description = "Malformed body", body = ProblemBody)))]
#[tracing::instrument(skip_all)]
pub async fn request_reset(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    recovery::request(&state, request.email.trim()).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    /// The `token` of the mailed link (`/reset-password?token=…`).
    #[schema(max_length = 128)]
    pub token: String,
    /// At least 10 characters, not the email, not a common password.
    #[schema(min_length = 10)]
    pub new_password: String,
}

/// Sets a new password with a mailed reset link; every session ends (sign in again). The
/// address is verified too: the link reached it.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses((status = 204, description = "The new password is set; every session ended"),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 422, description = "A link that does not work (`invalid_token`: used, replaced or made up) or has expired (`token_expired`); a password the policy refuses (`weak_password`: the link is kept)", body = ProblemBody)))]
#[tracing::instrument(skip_all)]
pub async fn confirm_reset(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    recovery::reset(&state, &request.token, request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChange {
    /// The new address.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// Asks to change the caller's address: a link is mailed to the new address, and the account
/// keeps its address until the link is opened (then the new one is its verified address).
#[utoipa::path(post, path = "/api/v1/users/me/email", tag = "users", security(("bearer" = [])), request_body = EmailChange,
    responses((status = 202, description = "A link is on its way to the new address"),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 403, description = "Not the account's password (`wrong_password`)", body = ProblemBody),
        (status = 409, description = "Another account has this address (`email_taken`)", body = ProblemBody),
        (status = 422, description = "Not an address (`invalid_email`), or the account's own (`same_email`)", body = ProblemBody),
        (status = 429, description = "A link went out less than a minute ago; see Retry-After", body = ProblemBody)))]
pub async fn change_email(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<EmailChange>,
) -> Result<StatusCode, ApiError> {
    let (email, password) = (request.email, request.password);
    verification::request_email_change(&state, identity.user_id, &email, password).await?;
    Ok(StatusCode::ACCEPTED)
}
