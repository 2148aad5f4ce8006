//! How late a service's outbox is: `taskmesh_outbox_lag_seconds{service}`, the age of its oldest
//! event due and not yet published (0 when none), read every [`EVERY`] whether or not the relay
//! can publish (a relay that cannot reach RabbitMQ is what makes it grow).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the lag is read again.
pub const EVERY: Duration = Duration::from_secs(15);

/// Sets `service`'s lag every [`EVERY`] until `shutdown`.
pub async fn report(pool: PgPool, service: &'static str, shutdown: CancellationToken) {
    crate::background::every(EVERY, &shutdown, || {
        let pool = pool.clone();
        async move {
            match oldest_due_age(&pool).await {
                Ok(age) => {
                    metrics::gauge!("taskmesh_outbox_lag_seconds", "service" => service).set(age)
                }
                Err(err) => tracing::debug!(error = %err, "cannot read the outbox's lag"),
            }
        }
    })
    .await
}

/// Seconds since the oldest due, unpublished event became due; 0 when there is none.
async fn oldest_due_age(pool: &PgPool) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM now() - min(available_at)), 0)::float8
           FROM outbox WHERE published_at IS NULL AND available_at <= now()",
    )
    .fetch_one(pool)
    .await
}
