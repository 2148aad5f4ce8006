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
    shared::background::every_after(Duration::from_secs(every), &shutdown, || async {
        if let Err(err) = crate::service::cleanup::sweep(&state).await {
            tracing::warn!(error = %err, "media sweep failed; next round later");
        }
    })
    .await
}
