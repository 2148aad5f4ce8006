//! The webhook routes: a user's endpoints (create, list, read, update, delete, rotate the
//! secret, send a test) and their deliveries (the log, redeliver). A user only ever sees their own
//! endpoints: another's is 404. The secret is in the answers of create and rotate only.

use std::collections::HashMap;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    identity::Identity,
    outbound::{Guard, Refusal},
    paging::{next_after, Limit},
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use uuid::Uuid;

use super::model::{self, DeliveryState, Endpoint, Invalid};
use super::sign::Secret;
use super::{endpoint_store, store};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhook_list, webhook_create))
        .routes(routes!(webhook_read, webhook_update, webhook_delete))
        .routes(routes!(webhook_rotate_secret))
        .routes(routes!(webhook_deliveries))
        .routes(routes!(webhook_redeliver))
        .routes(routes!(webhook_test))
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::unprocessable(invalid.code, invalid.detail)
    }
}

/// The longest a request waits for the URL's name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

fn guard(state: &AppState) -> Result<Guard, ApiError> {
    Guard::new("webhooks.allow", &state.config.webhooks.allow).map_err(ApiError::internal)
}

/// A URL the endpoint may use: well formed (see [`model::parse_url`]) and, resolved now, not
/// pointing inside unless allowed.
async fn checked_url(guard: &Guard, raw: &str) -> Result<String, ApiError> {
    let url = model::parse_url(raw, guard)?;
    match tokio::time::timeout(RESOLVE_TIMEOUT, guard.check(&url)).await {
        Ok(Ok(_)) => Ok(url.to_string()),
        Ok(Err(Refusal::Forbidden(why))) => Err(ApiError::unprocessable("forbidden_url", why)),
        Ok(Err(Refusal::Unresolved(why))) => Err(ApiError::unprocessable("unresolvable_url", why)),
        Err(_) => Err(ApiError::unprocessable(
            "unresolvable_url",
            "the url's host did not resolve in time",
        )),
    }
}

fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

/// The caller's endpoint `raw_id`; 404 for anyone else's and for malformed ids.
async fn own_endpoint(
    state: &AppState,
    identity: &Identity,
    raw_id: &str,
) -> Result<Endpoint, ApiError> {
    let id = parse_id(raw_id, "webhook endpoint")?;
    let mut conn = state.pool.acquire().await?;
    endpoint_store::find_endpoint(&mut conn, identity.user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// Where deliveries are POSTed: http or https.
    #[schema(max_length = 2000, example = "https://example.com/taskmesh-hook")]
    pub url: String,
    /// The kinds of notification to deliver, e.g. `["task.assigned"]`.
    #[schema(min_items = 1, max_items = 20)]
    pub event_types: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// An endpoint with its signing secret: only in the answers of create and rotate.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookEndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` + base64 key; verify deliveries with it (Standard Webhooks).
    pub secret: String,
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhookEndpoint,
    responses((status = 201, description = "Created; the answer carries the secret, shown only now", body = WebhookEndpointWithSecret),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 409, description = "The caller has `webhooks.max_endpoints_per_user` endpoints already", body = ProblemBody),
        (status = 422, description = "Invalid url (`invalid_url`, `forbidden_url`, `unresolvable_url`), event types (`invalid_event_types`, `unknown_event_type`) or description (`invalid_description`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn webhook_create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateWebhookEndpoint>,
) -> Result<(StatusCode, Json<WebhookEndpointWithSecret>), ApiError> {
    let guard = guard(&state)?;
    let event_types = model::parse_event_types(&request.event_types)?;
    let description = model::parse_description(request.description.as_deref().unwrap_or(""))?;
    let url = checked_url(&guard, &request.url).await?;
    let secret = Secret::generate();
    let sealed_secret = state.at_rest.seal(secret.expose().as_bytes());
    let mut tx = state.pool.begin().await?;
    endpoint_store::lock_user(&mut tx, identity.user_id).await?;
    let max = state.config.webhooks.max_endpoints_per_user;
    if endpoint_store::count_endpoints(&mut tx, identity.user_id).await? >= i64::from(max) {
        return Err(ApiError::conflict(
            "too_many_endpoints",
            format!("at most {max} webhook endpoints per user; delete one first"),
        ));
    }
    let new = endpoint_store::NewEndpoint {
        id: Uuid::now_v7(),
        user_id: identity.user_id,
        url: &url,
        description: &description,
        event_types: &event_types,
        sealed_secret: &sealed_secret,
    };
    let endpoint = endpoint_store::insert_endpoint(&mut tx, &new).await?;
    tx.commit().await?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
    Ok((
        StatusCode::CREATED,
        Json(WebhookEndpointWithSecret {
            endpoint,
            secret: secret.expose().to_string(),
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookEndpointList {
    pub items: Vec<Endpoint>,
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, description = "The caller's endpoints, oldest first (no secrets)", body = WebhookEndpointList),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn webhook_list(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    let items = endpoint_store::list_endpoints(&state.pool, identity.user_id).await?;
    Ok(Json(WebhookEndpointList { items }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint (no secret)", body = Endpoint),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's", body = ProblemBody)))]
pub async fn webhook_read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    own_endpoint(&state, &identity, &id).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookEndpoint {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 20)]
    pub event_types: Option<Vec<String>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `true` re-enables a disabled endpoint and restarts its failure clock; `false` disables
    /// it and cancels its pending deliveries.
    pub enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    request_body = UpdateWebhookEndpoint,
    responses((status = 200, description = "Updated", body = Endpoint),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's", body = ProblemBody),
        (status = 422, description = "Invalid url, event types or description (codes as on create)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, endpoint_id = %id))]
pub async fn webhook_update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateWebhookEndpoint>,
) -> Result<Json<Endpoint>, ApiError> {
    // Another's endpoint is 404 whatever the body says.
    let id = own_endpoint(&state, &identity, &id).await?.id;
    let event_types = match &request.event_types {
        Some(types) => Some(model::parse_event_types(types)?),
        None => None,
    };
    let description = match &request.description {
        Some(text) => Some(model::parse_description(text)?),
        None => None,
    };
    let url = match &request.url {
        Some(raw) => Some(checked_url(&guard(&state)?, raw).await?),
        None => None,
    };
    let changes = endpoint_store::Changes {
        url,
        description,
        event_types,
        enabled: request.enabled,
    };
    let mut tx = state.pool.begin().await?;
    let endpoint = endpoint_store::update_endpoint(&mut tx, identity.user_id, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    if !endpoint.enabled {
        store::cancel_pending(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(Json(endpoint))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted, with its deliveries"),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's", body = ProblemBody)))]
pub async fn webhook_delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "webhook endpoint")?;
    match endpoint_store::delete_endpoint(&state.pool, identity.user_id, id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("webhook endpoint")),
    }
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "A new secret, shown only now; the previous one also signs until `previous_secret_until` (`webhooks.secret_overlap_secs`)", body = WebhookEndpointWithSecret),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, endpoint_id = %id))]
pub async fn webhook_rotate_secret(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointWithSecret>, ApiError> {
    let id = parse_id(&id, "webhook endpoint")?;
    let secret = Secret::generate();
    let sealed = state.at_rest.seal(secret.expose().as_bytes());
    let overlap = Duration::from_secs(state.config.webhooks.secret_overlap_secs);
    let mut conn = state.pool.acquire().await?;
    let endpoint = endpoint_store::rotate_secret(&mut conn, identity.user_id, id, &sealed, overlap)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    tracing::info!("webhook secret rotated");
    Ok(Json(WebhookEndpointWithSecret {
        endpoint,
        secret: secret.expose().to_string(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAttempt {
    pub at: DateTime<Utc>,
    /// The HTTP status of the answer; `null` when there was none (see `error`).
    pub status: Option<i32>,
    /// Why there was no answer (timeout, connection refused, refused address).
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The first KiB of the answer's body.
    pub response_excerpt: Option<String>,
}

/// One event sent (or to be sent) to the endpoint.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    pub id: Uuid,
    /// The `webhook-id` header of every attempt of this delivery.
    pub message_id: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub state: DeliveryState,
    /// Attempts since it was (re)queued.
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<WebhookAttempt>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDeliveryPage {
    pub items: Vec<WebhookDelivery>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id"), DeliveriesQuery),
    responses((status = 200, description = "The endpoint's deliveries, newest first, each with its last 20 attempts", body = WebhookDeliveryPage),
        (status = 400, description = "Bad cursor or limit", body = ProblemBody),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's", body = ProblemBody)))]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookDeliveryPage>, ApiError> {
    let Query(query) = query?;
    let endpoint = own_endpoint(&state, &identity, &id).await?;
    let limit = Limit::new(20, 100).check(query.limit)?;
    let before =
        match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(cursor) => Some(Uuid::parse_str(cursor).map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor is not one we gave")
            })?),
            None => None,
        };
    let mut rows = store::deliveries_page(&state.pool, endpoint.id, before, limit + 1).await?;
    let next_cursor = next_after(&mut rows, limit, |r| r.id.to_string());
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut logs: HashMap<Uuid, Vec<WebhookAttempt>> = HashMap::new();
    for a in store::attempts_of(&state.pool, &ids).await? {
        logs.entry(a.delivery_id).or_default().push(WebhookAttempt {
            at: a.at,
            status: a.status,
            error: a.error,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
        });
    }
    let items = rows
        .into_iter()
        .map(|r| WebhookDelivery {
            message_id: super::sign::message_id(r.id),
            attempt_log: logs.remove(&r.id).unwrap_or_default(),
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            state: r.state,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_status: r.last_status,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    Ok(Json(WebhookDeliveryPage { items, next_cursor }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id"),
        ("delivery_id" = uuid::Uuid, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued again now, with the same `webhook-id` and a fresh schedule"),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's, or no such delivery of it", body = ProblemBody),
        (status = 409, description = "The endpoint is disabled (enable it first), or an attempt of the delivery is running", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, endpoint_id = %id))]
pub async fn webhook_redeliver(
    State(state): State<AppState>,
    identity: Identity,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let endpoint = own_endpoint(&state, &identity, &id).await?;
    let delivery_id = parse_id(&delivery_id, "delivery")?;
    if !endpoint.enabled {
        return Err(ApiError::conflict(
            "endpoint_disabled",
            "the endpoint is disabled; enable it before redelivering",
        ));
    }
    match store::redeliver(&state.pool, endpoint.id, delivery_id).await? {
        Some(true) => Ok(StatusCode::ACCEPTED),
        Some(false) => Err(ApiError::conflict(
            "delivery_in_flight",
            "an attempt of this delivery is running; redeliver once it has ended",
        )),
        None => Err(ApiError::not_found("delivery")),
    }
}

/// A test delivery queued.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookTest {
    pub delivery_id: Uuid,
    /// The `id` of the event it carries (its `type` is `webhook.test`).
    pub event_id: Uuid,
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Endpoint id")),
    responses((status = 202, description = "A `webhook.test` event is queued to the endpoint now, signed and retried like any delivery; it shows in the deliveries", body = WebhookTest),
        (status = 401, description = "Not authenticated", body = ProblemBody),
        (status = 404, description = "No such endpoint of the caller's", body = ProblemBody),
        (status = 409, description = "The endpoint is disabled (enable it first)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, endpoint_id = %id))]
pub async fn webhook_test(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<WebhookTest>), ApiError> {
    let endpoint = own_endpoint(&state, &identity, &id).await?;
    if !endpoint.enabled {
        return Err(ApiError::conflict(
            "endpoint_disabled",
            "the endpoint is disabled; enable it before testing it",
        ));
    }
    let event = shared::events::CloudEvent {
        specversion: "1.0".into(),
        id: Uuid::now_v7(),
        source: format!("/taskmesh/{}", crate::SERVICE),
        event_type: "webhook.test".into(),
        subject: Some(endpoint.id.to_string()),
        time: Utc::now(),
        datacontenttype: "application/json".into(),
        dataversion: 1,
        traceparent: None,
        data: serde_json::json!({
            "endpoint_id": endpoint.id,
            "message": "A test from Taskmesh: this endpoint is reachable, and its signature checks out with your secret.",
        }),
    };
    let body = serde_json::to_vec(&event).map_err(ApiError::internal)?;
    let delivery_id = store::enqueue_test(&state.pool, endpoint.id, event.id, &body).await?;
    tracing::info!("webhook test queued");
    let test = WebhookTest {
        delivery_id,
        event_id: event.id,
    };
    Ok((StatusCode::ACCEPTED, Json(test)))
}
