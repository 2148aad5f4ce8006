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
//! - [`endpoint_store`]: the SQL of an endpoint's own row (`webhook_endpoints`).
//! - [`store`]: the SQL of `webhook_deliveries`, `webhook_attempts` and an endpoint's failure state.
//! - [`deliver`]: the delivery loop every replica runs.

pub mod deliver;
pub mod endpoint_store;
pub mod http;
pub mod model;
pub mod schedule;
pub mod sign;
pub mod store;

use tokio_util::sync::CancellationToken;

use crate::AppState;

/// The webhook routes.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    http::router()
}

/// This part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(
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

/// Delivers due deliveries until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    deliver::run(state, shutdown).await
}
