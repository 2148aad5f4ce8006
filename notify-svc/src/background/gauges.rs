//! Gauges of notify-svc's state, every [`EVERY`]: webhook endpoints disabled after their
//! deliveries kept failing (`taskmesh_webhook_endpoints_disabled`). At start, the outcomes its
//! counters know are set at zero, so a rate over them is defined before the first mail fails.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the gauges are read again.
pub const EVERY: Duration = Duration::from_secs(15);

/// Sets the gauges every [`EVERY`] until `shutdown`.
pub async fn run(pool: PgPool, shutdown: CancellationToken) {
    for outcome in ["sent", "held", "failed", "digest"] {
        metrics::counter!("taskmesh_notify_mail_total", "outcome" => outcome).increment(0);
    }
    for outcome in ["sent", "failed", "over_cap"] {
        metrics::counter!("taskmesh_notify_sms_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("taskmesh_webhook_deliveries_total", "outcome" => "delivered").increment(0);
    shared::background::every(EVERY, &shutdown, || {
        let pool = pool.clone();
        async move {
            match crate::webhooks::endpoint_store::disabled_by_failures(&pool).await {
                Ok(count) => {
                    metrics::gauge!("taskmesh_webhook_endpoints_disabled").set(count as f64)
                }
                Err(err) => tracing::debug!(error = %err, "cannot count the disabled endpoints"),
            }
        }
    })
    .await
}
