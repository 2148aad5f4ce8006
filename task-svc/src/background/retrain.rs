//! Retraining the priority model when it is due, checked once a minute.

use sqlx::PgPool;

use crate::service::priority::retrain_if_due;

/// Checks once a minute whether to retrain (see [`retrain_if_due`]), until `shutdown`.
pub async fn retrain_periodically(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    let minute = std::time::Duration::from_secs(60);
    shared::background::every_after(minute, &shutdown, || async {
        if let Err(err) = retrain_if_due(&pool).await {
            tracing::warn!(error = %err, "priority model retraining failed");
        }
    })
    .await
}
