//! Outgoing webhooks: endpoints people register, deliveries signed as Standard Webhooks
//! specifies (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried on
//! `webhooks.schedule_secs`, and endpoints disabled on `410 Gone` or after failing for
//! `webhooks.disable_after_secs` (their owner is told in-app).
//!
//! # Layout
//! - [`http`]: the routes under `/api/v1/webhooks` and their OpenAPI description.
//! - [`model`]: an endpoint as its owner sees it, a delivery's state, the input rules.
//! - [`sign`]: secrets and signatures (pure).
//! - [`schedule`]: when a failed delivery is tried again (pure).
//! - [`store`]: the SQL of `webhook_endpoints`, `webhook_deliveries`, `webhook_attempts`.
//! - [`deliver`]: the delivery loop every replica runs.

pub mod deliver;
pub mod http;
pub mod model;
pub mod schedule;
pub mod sign;
pub mod store;

use std::time::Duration;

use axum::Router;
use shared::events::CloudEvent;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::Kind;
use crate::AppState;

/// The webhook routes.
pub fn router() -> Router<AppState> {
    http::router()
}

/// This part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        http::webhook_create,
        http::webhook_list,
        http::webhook_read,
        http::webhook_update,
        http::webhook_delete,
        http::webhook_rotate_secret,
        http::webhook_deliveries,
        http::webhook_redeliver,
    ),
    components(schemas(
        model::Endpoint,
        model::DeliveryState,
        http::CreateWebhookEndpoint,
        http::UpdateWebhookEndpoint,
        http::WebhookEndpointWithSecret,
        http::WebhookEndpointList,
        http::WebhookAttempt,
        http::WebhookDelivery,
        http::WebhookDeliveryPage,
    )),
    tags((name = "webhooks", description = "Outgoing webhooks: endpoints, signed deliveries and their log"))
)]
pub struct ApiDoc;

/// Queues `event` for each of `user_id`'s enabled endpoints subscribed to `kind`, inside the
/// fan-out's transaction; how many deliveries were queued. Once per (event, endpoint): a
/// redelivered event queues nothing new. The body is the event's JSON without its
/// `traceparent`, stored and sent as is.
/// The first attempt is due at once (`enqueue` has no config: `schedule_secs[0]`, 0 by
/// default, is not applied).
pub async fn enqueue(
    tx: &mut PgConnection,
    user_id: Uuid,
    kind: Kind,
    event: &CloudEvent,
) -> Result<u64, sqlx::Error> {
    // Receivers are third parties: the platform's trace context stays inside.
    let public = CloudEvent {
        traceparent: None,
        ..event.clone()
    };
    let body = serde_json::to_vec(&public).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    store::enqueue(tx, user_id, kind.as_str(), event.id, &body, Duration::ZERO).await
}

/// Delivers due deliveries until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    deliver::run(state, shutdown).await
}
