//! `GET /api/v1/people`: names for ids, or a search by name, among the people the caller may
//! see. The gateway's `GET /api/v1/users/search` adds an exact email match for anyone.

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::Serialize;
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::person::{PeopleQuery, Person},
    service::people,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct People {
    pub items: Vec<Person>,
}

#[utoipa::path(get, path = "/api/v1/people", tag = "people", security(("bearer" = [])), params(PeopleQuery),
    responses((status = 200, description = "The people asked for whom the caller may see (others are left out)", body = People),
        (status = 400, description = "Neither or both of q and ids, a bad id, or too many", body = ProblemBody),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<PeopleQuery>, QueryRejection>,
) -> Result<Json<People>, ApiError> {
    let Query(query) = query?;
    let items = people::people(&state, &identity, query).await?;
    Ok(Json(People { items }))
}
