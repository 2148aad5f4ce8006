//! user-svc's routes: problem+json errors live here and nowhere below. Handlers parse the
//! request, check the caller's role, call [`crate::service`] and shape the answer.

pub mod auth;
pub mod keys;
pub mod live;
pub mod recovery;
pub mod tokens;
pub mod users;

use axum::{extract::State, routing::get, Json, Router};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// This service's part of the API description: its tags; the operations come from the routes
/// themselves ([`router`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "auth", description = "Accounts, login and sessions"),
        (name = "users", description = "The caller's profile"),
        (name = "tokens", description = "Personal access tokens: long-lived, scoped, revocable credentials for programs"),
        (name = "admin", description = "User administration and signing keys (admin role)")
    )
)]
pub struct ApiDoc;

/// Every route, the JWK set at `/.well-known/jwks.json` included, and the API description of
/// the documented ones: each route is declared once, by its handler's `#[utoipa::path]`.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(auth::router())
        .merge(users::router())
        .merge(recovery::router())
        .merge(keys::router())
        .merge(live::router())
        .merge(tokens::router())
        .route("/.well-known/jwks.json", get(jwks))
        .split_for_parts()
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.read().await.jwks.clone())
}
