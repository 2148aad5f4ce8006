//! Authentication: `POST /api/v1/auth/register`, `/verify-email`, `/login`, `/refresh`,
//! `/logout`, `/logout-all`.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use shared::{
    identity::{ClientIp, Identity},
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{
        account::User,
        session::{Ending, TokenResponse},
    },
    service::{
        accounts::{self, Registration},
        auth, sessions, verification,
    },
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(verify_email))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 10 characters, not the email, not a common password.
    #[schema(min_length = 10)]
    pub password: String,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: String,
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, description = "Registered", body = User),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 409, description = "Email taken", body = ProblemBody),
        (status = 422, description = "Invalid email, weak password or bad display name", body = ProblemBody)))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let registration = Registration {
        email: &request.email,
        password: request.password,
        display_name: &request.display_name,
    };
    let user = accounts::register(&state, registration).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` of the link mailed at registration (or on request).
    #[schema(max_length = 128)]
    pub token: String,
    /// The account's password: needed (`password_required`) only to confirm the bootstrap
    /// admin's address; when given, it must be the account's.
    pub password: Option<String>,
}

/// Verifies the address a link was mailed to (the dashboard's `/verify-email?token=…` page
/// calls it); no sign-in needed. A link works once, for 24 hours.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest,
    responses((status = 200, description = "Verified: the account", body = User),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 403, description = "A password that is not the account's (`wrong_password`): the link is kept", body = ProblemBody),
        (status = 422, description = "A link that does not work (`invalid_token`) or has expired (`token_expired`); the bootstrap admin's address needs the account's password (`password_required`: the link is kept)", body = ProblemBody)))]
#[tracing::instrument(skip_all)]
pub async fn verify_email(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<VerifyEmailRequest>,
) -> Result<Json<User>, ApiError> {
    let verified = verification::verify(&state, &request.token, request.password).await?;
    Ok(Json(verified))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Access and refresh token", body = TokenResponse),
        (status = 401, description = "Wrong email or password", body = ProblemBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ProblemBody),
        (status = 503, description = "user-svc or Redis unavailable", body = ProblemBody)))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(
        auth::login(&state, &ip, &request.email, request.password).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "A new access token and the next refresh token", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ProblemBody)))]
#[tracing::instrument(skip_all)]
pub async fn refresh(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(auth::refresh(&state, &request.refresh_token).await?))
}

/// Ends the caller's session: its access and refresh tokens stop working now.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "This session ended"),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn logout(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<StatusCode, ApiError> {
    let session_id = identity
        .session_id
        .ok_or_else(|| ApiError::unauthorized("no session"))?;
    sessions::end(&state, identity.user_id, Ending::One(session_id), "logout").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the caller.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Every session of the caller ended"),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn logout_all(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<StatusCode, ApiError> {
    let everywhere = Ending::AllBut(None);
    sessions::end(&state, identity.user_id, everywhere, "logout everywhere").await?;
    Ok(StatusCode::NO_CONTENT)
}
