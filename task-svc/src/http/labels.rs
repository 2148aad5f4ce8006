//! Labels over HTTP: `GET/POST /api/v1/labels`, `PATCH/DELETE /api/v1/labels/{id}`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Serialize;
use shared::{
    identity::Identity,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::label::{CreateLabel, Label, UpdateLabel},
    service::labels,
    AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, delete))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Labels {
    pub items: Vec<Label>,
}

#[utoipa::path(get, path = "/api/v1/labels", tag = "tasks", security(("bearer" = [])),
    responses((status = 200, description = "The caller's own labels and their channels', by name", body = Labels)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Labels>, ApiError> {
    let items = labels::list(&state, &identity).await?;
    Ok(Json(Labels { items }))
}

#[utoipa::path(post, path = "/api/v1/labels", tag = "tasks", security(("bearer" = [])), request_body = CreateLabel,
    responses((status = 201, description = "The label (a tag's colour)", body = Label),
        (status = 404, description = "No such channel of the caller's", body = ProblemBody),
        (status = 409, description = "A label of that name exists there", body = ProblemBody),
        (status = 422, description = "A bad name or colour, or 100 labels already", body = ProblemBody)))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateLabel>,
) -> Result<(StatusCode, Json<Label>), ApiError> {
    let label = labels::create(&state, &identity, request).await?;
    Ok((StatusCode::CREATED, Json(label)))
}

#[utoipa::path(patch, path = "/api/v1/labels/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Label id")), request_body = UpdateLabel,
    responses((status = 200, description = "The label, recoloured", body = Label),
        (status = 403, description = "A channel's label, and not its owner", body = ProblemBody),
        (status = 404, description = "No such label visible to the caller", body = ProblemBody),
        (status = 422, description = "A bad colour", body = ProblemBody)))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateLabel>,
) -> Result<Json<Label>, ApiError> {
    Ok(Json(
        labels::recolor(&state, &identity, &id, &request.color).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/labels/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Label id")),
    responses((status = 204, description = "Deleted (its tag stays on tasks)"),
        (status = 403, description = "A channel's label, and not its owner", body = ProblemBody),
        (status = 404, description = "No such label visible to the caller", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    labels::delete(&state, &identity, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
