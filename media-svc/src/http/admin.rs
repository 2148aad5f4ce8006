//! `POST /api/v1/admin/media/sweep`: run the sweep now and see what it did.

use axum::{extract::State, Json};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::service::cleanup::{self, SweepReport};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sweep))
}

#[utoipa::path(post, path = "/api/v1/admin/media/sweep", tag = "media",
    responses((status = 200, description = "What the sweep removed: objects no row refers to, half-written files, rows whose object is gone", body = SweepReport),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn sweep(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<SweepReport>, ApiError> {
    identity.require_admin()?;
    Ok(Json(cleanup::sweep(&state).await?))
}
