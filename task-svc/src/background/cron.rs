//! The cron loop: [`crate::service::cron::cron_round`] every `jobs.cron_poll_ms`.

use shared::config::JobsConfig;
use sqlx::PgPool;

use crate::service::cron::cron_round;

/// Runs [`cron_round`] every `jobs.cron_poll_ms` until `shutdown`.
pub async fn run_cron(
    pool: PgPool,
    cache: crate::infra::list_cache::ListCache,
    config: JobsConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let period = std::time::Duration::from_millis(config.cron_poll_ms.max(50));
    shared::background::every(period, &shutdown, || async {
        match cron_round(&pool, &cache, config.member_max_live_jobs).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(runs = n, "cron runs created"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "cron round failed"),
        }
    })
    .await
}
