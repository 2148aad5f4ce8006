//! Every `notifications.digest_interval_secs`, one digest mail to each person whose held mail
//! now fits under the hourly cap.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::channels::mail::Mailer;
use crate::service::mail;
use crate::AppState;

pub async fn run(state: AppState, mailer: Arc<Mailer>, shutdown: CancellationToken) {
    let every = Duration::from_secs(state.config.notifications.digest_interval_secs.max(1));
    shared::background::every_after(every, &shutdown, || async {
        match mail::send_digests(&state, &mailer).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(digests = n, "sent digests of held mail"),
            Err(e) => tracing::warn!(error = %e, "digest round failed; trying again next round"),
        }
    })
    .await
}
