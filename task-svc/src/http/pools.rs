//! The operators' pool routes (admins): each pool's depth by state, its dead letters and
//! whether it is paused (`GET /api/v1/admin/pools`), the last hour's runs minute by minute
//! (`GET /api/v1/admin/jobs/activity`), and pausing and resuming a pool
//! (`POST /api/v1/admin/pools/{pool}/pause` and `/resume`). A paused pool's workers stop taking
//! its jobs within a second and finish the ones they are running; its jobs are still
//! dispatched and wait in its queue, and run once it is resumed. Members create `command` jobs
//! only in a pool an admin granted (`POST /api/v1/admin/pools/{pool}/commands/grant`,
//! `/revoke`).

use axum::{
    extract::{Path, Query, State},
    Json,
};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::pool::{CommandGrant, Minute, PoolPause, PoolStats, PoolWindow},
    service, AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pools))
        .routes(routes!(activity))
        .routes(routes!(throughput))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(grant_commands))
        .routes(routes!(revoke_commands))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PoolList {
    pub items: Vec<PoolStats>,
}

#[utoipa::path(get, path = "/api/v1/admin/pools", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Every pool that has jobs, with its depth by state", body = PoolList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn pools(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<PoolList>, ApiError> {
    identity.require_admin()?;
    let items = service::pools::stats(&state).await?;
    Ok(Json(PoolList { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// How far back, in minutes (1 to 1440, default 60).
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Activity {
    /// Oldest first; a minute without ended runs is absent.
    pub minutes: Vec<Minute>,
}

#[utoipa::path(get, path = "/api/v1/admin/jobs/activity", tag = "jobs", security(("bearer" = [])), params(ActivityQuery),
    responses((status = 200, description = "Runs ended per minute: successes, failures, run time", body = Activity),
        (status = 400, description = "`minutes` out of range", body = ProblemBody),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn activity(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<ActivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Activity>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let minutes = service::pools::activity(&state, query.minutes).await?;
    Ok(Json(Activity { minutes }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Throughput {
    /// Each pool with runs that ended in the window, its `day` after its `hour`.
    pub items: Vec<PoolWindow>,
}

#[utoipa::path(get, path = "/api/v1/admin/pools/throughput", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, description = "Each pool's runs over the last hour and the last day: successes, failures, run time and wait (median and 95th percentile)", body = Throughput),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn throughput(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Throughput>, ApiError> {
    identity.require_admin()?;
    let items = service::pools::throughput(&state).await?;
    Ok(Json(Throughput { items }))
}

#[utoipa::path(post, path = "/api/v1/admin/pools/{pool}/pause", tag = "jobs", security(("bearer" = [])),
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Paused (or already paused): workers stop taking its jobs within a second; running ones finish", body = PoolPause),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "Not a pool name", body = ProblemBody)))]
pub async fn pause(
    State(state): State<AppState>,
    identity: Identity,
    Path(pool): Path<String>,
) -> Result<Json<PoolPause>, ApiError> {
    identity.require_admin()?;
    Ok(Json(
        service::pools::set(&state, &identity, pool, true).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/pools/{pool}/resume", tag = "jobs", security(("bearer" = [])),
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Resumed (or was not paused): workers take its jobs again within a second", body = PoolPause),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "Not a pool name", body = ProblemBody)))]
pub async fn resume(
    State(state): State<AppState>,
    identity: Identity,
    Path(pool): Path<String>,
) -> Result<Json<PoolPause>, ApiError> {
    identity.require_admin()?;
    Ok(Json(
        service::pools::set(&state, &identity, pool, false).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/pools/{pool}/commands/grant", tag = "jobs", security(("bearer" = [])),
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Granted (or already granted): members may create `command` jobs in this pool, running the commands its workers' operator configured (workers.commands)", body = CommandGrant),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "Not a pool name", body = ProblemBody)))]
pub async fn grant_commands(
    State(state): State<AppState>,
    identity: Identity,
    Path(pool): Path<String>,
) -> Result<Json<CommandGrant>, ApiError> {
    identity.require_admin()?;
    Ok(Json(
        service::commands::set(&state, &identity, pool, true).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/pools/{pool}/commands/revoke", tag = "jobs", security(("bearer" = [])),
    params(("pool" = String, Path, description = "Pool name")),
    responses((status = 200, description = "Taken back (or was not granted): members' new `command` jobs in this pool get 403; jobs already created run", body = CommandGrant),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "Not a pool name", body = ProblemBody)))]
pub async fn revoke_commands(
    State(state): State<AppState>,
    identity: Identity,
    Path(pool): Path<String>,
) -> Result<Json<CommandGrant>, ApiError> {
    identity.require_admin()?;
    Ok(Json(
        service::commands::set(&state, &identity, pool, false).await?,
    ))
}
