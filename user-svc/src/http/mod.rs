//! user-svc's routes: problem+json errors live here and nowhere below. Handlers parse the
//! request, check the caller's role, call [`crate::service`] and shape the answer.

pub mod auth;
pub mod keys;
pub mod live;
pub mod users;

use axum::{extract::State, routing::get, Json, Router};

use crate::AppState;

/// This service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all,
        users::me, users::update_me, users::change_password, users::list, users::read,
        users::admin_update, users::delete, keys::list, keys::rotate, keys::retire
    ),
    tags(
        (name = "auth", description = "Accounts, login and sessions"),
        (name = "users", description = "The caller's profile"),
        (name = "admin", description = "User administration and signing keys (admin role)")
    )
)]
pub struct ApiDoc;

/// Every route, the JWK set at `/.well-known/jwks.json` included.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(keys::router())
        .merge(live::router())
        .route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.read().await.jwks.clone())
}
