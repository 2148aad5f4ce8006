//! Access tokens: EdDSA JWTs with `iss`, `aud`, `exp`, `iat`, `sub`, `role`, `sid` and the
//! signing key's `kid` in the header.

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use shared::ApiError;
use uuid::Uuid;

use crate::AppState;

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

/// What login and refresh return.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Signs an access token for a user in a session with the newest key.
pub async fn access_token(
    state: &AppState,
    user_id: Uuid,
    role: &str,
    session_id: Uuid,
) -> Result<String, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let auth = &state.config.auth;
    let claims = Claims {
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
        sub: user_id.to_string(),
        role: role.to_string(),
        sid: session_id.to_string(),
        iat: now,
        exp: now + auth.access_token_ttl_secs as i64,
    };
    let keys = state.keys.read().await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys.kid.clone());
    jsonwebtoken::encode(&header, &claims, &keys.encoding).map_err(ApiError::internal)
}

/// A full token response for a session.
pub async fn response(
    state: &AppState,
    user_id: Uuid,
    role: &str,
    session_id: Uuid,
    refresh_token: String,
) -> Result<TokenResponse, ApiError> {
    Ok(TokenResponse {
        access_token: access_token(state, user_id, role, session_id).await?,
        refresh_token,
        token_type: "Bearer".into(),
        expires_in: state.config.auth.access_token_ttl_secs,
    })
}
