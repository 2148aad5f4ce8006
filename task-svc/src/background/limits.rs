//! The per-key limits' sweep: every second, keys with waiting jobs admit what they allow (the
//! places freed by cancels, deletions and deactivated owners, which no report announces).

use sqlx::PgPool;

/// How often the sweep looks.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn run_sweep(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) {
    shared::background::every(SWEEP_EVERY, &shutdown, || async {
        match crate::service::limits::sweep(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(admitted = n, "limited jobs admitted by the sweep"),
            Err(err) => tracing::warn!(error = %err, "limit sweep failed"),
        }
    })
    .await
}
