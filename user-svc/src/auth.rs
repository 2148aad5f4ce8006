//! Authentication: `POST /api/v1/auth/register`, `/login`, `/refresh`, `/logout`, `/logout-all`.

use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use serde::Deserialize;
use shared::{
    events::{CloudEvent, UserCreated},
    identity::{ClientIp, Identity},
    outbox,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use uuid::Uuid;

use crate::{
    domain::{parse_display_name, parse_email},
    password,
    sessions::{self, end_sessions, Ending},
    throttle,
    tokens::{self, TokenResponse},
    users::User,
    AppState, SERVICE,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/logout-all", post(logout_all))
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
    let email = parse_email(&request.email)?;
    password::check_policy(&request.password, &email)?;
    let display_name = parse_display_name(&request.display_name)?;
    let password_hash = password::hash(request.password).await?;
    // Nobody registers as admin, except the configured bootstrap address.
    let role = match &state.config.auth.bootstrap_admin_email {
        Some(admin) if admin.eq_ignore_ascii_case(&email) => "admin",
        _ => "member",
    };
    let mut tx = state.pool.begin().await?;
    let inserted: Result<User, sqlx::Error> = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, display_name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5) RETURNING {}",
        crate::users::COLUMNS
    ))
    .bind(Uuid::now_v7())
    .bind(&email)
    .bind(&display_name)
    .bind(&password_hash)
    .bind(role)
    .fetch_one(&mut *tx)
    .await;
    let user = match inserted {
        Ok(user) => user,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => {
            return Err(ApiError::conflict(
                "email_taken",
                "an account with this email already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let event = CloudEvent::new(
        SERVICE,
        UserCreated {
            user_id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: user.role.clone(),
        },
    );
    outbox::enqueue(&mut tx, event).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "email or password is wrong",
    )
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
    let email = request.email.trim().to_string();
    if email.len() > 254 || request.password.len() > 1024 {
        return Err(invalid_credentials());
    }
    throttle::admit(&state, &email, &ip).await?;
    let row: Option<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT id, password_hash, role, active FROM users WHERE lower(email) = lower($1)",
    )
    .bind(&email)
    .fetch_optional(&state.pool)
    .await?;
    // An unknown email costs the same hash verification as a wrong password.
    let stored = row
        .as_ref()
        .map_or(password::DUMMY_HASH.to_string(), |r| r.1.clone());
    let verified = password::verify(request.password.clone(), stored).await?;
    let (user_id, role) = match row {
        Some((id, _, role, true)) if verified.ok => (id, role),
        _ => return Err(invalid_credentials()),
    };
    throttle::succeeded(&state, &email, &ip).await;
    if verified.needs_rehash {
        let rehashed = password::hash(request.password).await?;
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(rehashed)
            .execute(&state.pool)
            .await?;
        tracing::info!(%user_id, "password rehashed with current parameters");
    }
    let ttl = state.config.auth.session_ttl_secs;
    let mut tx = state.pool.begin().await?;
    let issued = sessions::open(&mut tx, user_id, ttl).await?;
    tx.commit().await?;
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(ttl as i64);
    sessions::mirror(&state, issued.session_id, user_id, expires_at).await?;
    let response = tokens::response(
        &state,
        user_id,
        &role,
        issued.session_id,
        issued.refresh_token,
    )
    .await?;
    Ok(Json(response))
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
    let invalid = || ApiError::unauthorized("invalid or expired refresh token");
    if request.refresh_token.len() > 128 {
        return Err(invalid());
    }
    let mut tx = state.pool.begin().await?;
    let outcome = sessions::refresh(&mut tx, &request.refresh_token).await?;
    tx.commit().await?;
    match outcome {
        sessions::Refreshed::Ok {
            user_id,
            role,
            issued,
            expires_at,
        } => {
            sessions::mirror(&state, issued.session_id, user_id, expires_at).await?;
            let response = tokens::response(
                &state,
                user_id,
                &role,
                issued.session_id,
                issued.refresh_token,
            )
            .await?;
            Ok(Json(response))
        }
        sessions::Refreshed::Reused { session_id } => {
            tracing::warn!(%session_id, "a spent refresh token was presented; session revoked");
            sessions::unmirror(&state, &[session_id]).await?;
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "this refresh token was already used; the session has been ended",
            ))
        }
        sessions::Refreshed::Invalid => Err(invalid()),
    }
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
    end_sessions(&state, identity.user_id, Ending::One(session_id), "logout").await?;
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
    end_sessions(
        &state,
        identity.user_id,
        Ending::AllBut(None),
        "logout everywhere",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
