//! `POST /api/v1/auth/register` and `POST /api/v1/auth/login`.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use shared::{
    events::{CloudEvent, UserCreated},
    outbox,
    problem::JsonBody,
    ApiError,
};
use uuid::Uuid;

use crate::{users::User, AppState, SERVICE};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// A parsed e-mail address: trimmed, at most 254 characters, one `@` with text on both sides.
fn parse_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim();
    let valid = email.len() <= 254
        && email.split('@').count() == 2
        && email.split('@').all(|part| !part.is_empty())
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email.to_string())
    } else {
        Err(ApiError::unprocessable(
            "invalid_email",
            "email must be an address like name@example.com",
        ))
    }
}

fn check_password(password: &str, email: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if !(10..=256).contains(&length) {
        return Err(ApiError::unprocessable(
            "weak_password",
            "password must be 10 to 256 characters long",
        ));
    }
    if password.eq_ignore_ascii_case(email) {
        return Err(ApiError::unprocessable(
            "weak_password",
            "password must not be the email address",
        ));
    }
    Ok(())
}

fn parse_display_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_display_name",
            "display_name must be 1 to 100 printable characters",
        ));
    }
    Ok(name.to_string())
}

#[tracing::instrument(skip_all)]
async fn register(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let email = parse_email(&request.email)?;
    check_password(&request.password, &email)?;
    let display_name = parse_display_name(&request.display_name)?;
    let password = request.password;
    // Hashing takes tens of milliseconds of CPU: keep it off the async workers.
    let password_hash = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing a password: {e}")))?;

    let user = User {
        id: Uuid::now_v7(),
        email,
        display_name,
        role: "member".into(),
    };
    let mut tx = state.pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.display_name)
    .bind(&password_hash)
    .bind(&user.role)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email_key") => {
            return Err(ApiError::conflict(
                "email_taken",
                "an account with this email already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub role: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// A valid hash of nothing, verified against when the email is unknown so both failures cost
/// the same time.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1qDkVNSOkK3YHWCxQtbTKKz6gW+vqXQAOQI1hfySFL0";

#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let row: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, password_hash, role FROM users WHERE lower(email) = lower($1)")
            .bind(request.email.trim())
            .fetch_optional(&state.pool)
            .await?;
    let stored = row
        .as_ref()
        .map(|(_, hash, _)| hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    let password = request.password;
    let verified = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(ApiError::internal)?;
    let (user_id, _, role) = match (row, verified) {
        (Some(row), true) => row,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "email or password is wrong",
            ))
        }
    };
    let now = chrono::Utc::now().timestamp();
    let ttl = state.config.auth.access_token_ttl_secs;
    let claims = Claims {
        iss: state.config.auth.issuer.clone(),
        aud: state.config.auth.audience.clone(),
        sub: user_id.to_string(),
        role,
        sid: Uuid::now_v7().to_string(),
        iat: now,
        exp: now + ttl as i64,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(state.keys.kid.clone());
    let token =
        jsonwebtoken::encode(&header, &claims, &state.keys.encoding).map_err(ApiError::internal)?;
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: ttl,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            parse_email("  ada@example.com ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "a da@example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_need_ten_characters_and_not_the_email() {
        assert!(check_password("short", "a@b.c").is_err());
        assert!(check_password("ada@example.com", "ADA@example.com").is_err());
        assert!(check_password("correct horse battery", "a@b.c").is_ok());
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
