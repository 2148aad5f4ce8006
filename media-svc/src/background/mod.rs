//! media-svc's periodic work: the sweep.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Sweeps every `files.sweep_interval_secs` (never when 0), first one interval after start.
pub async fn sweep_periodically(state: AppState, shutdown: CancellationToken) {
    let every = state.config.files.sweep_interval_secs;
    if every == 0 {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(every)) => {}
        }
        if let Err(err) = crate::service::cleanup::sweep(&state).await {
            tracing::warn!(error = %err, "media sweep failed; next round later");
        }
    }
}
