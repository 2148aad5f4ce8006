//! Sending one queued text.

use std::time::Duration;

use uuid::Uuid;

use crate::channels::sms::{Provider, SmsError};
use crate::store::messages::{self, Claim};
use crate::AppState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Another sender holds the text's claim: wait for it to settle or lapse.
    #[error("another sender holds this text's claim")]
    Busy,
    #[error(transparent)]
    Send(#[from] SmsError),
}

/// How long a claim on a text lasts.
fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.config.sms.timeout_secs * 2 + 30)
}

/// Sends the queued text `id` (title and link, cut to 320 characters), unless settled before,
/// claimed by another sender, its person is gone, or they had `sms.hourly_cap` texts in the last
/// hour (then it is skipped). Without a provider it is skipped too.
pub async fn deliver(
    state: &AppState,
    provider: Option<&dyn Provider>,
    id: Uuid,
    last_attempt: bool,
) -> Result<(), Error> {
    let cap = i64::from(state.config.sms.hourly_cap);
    let message = match state.claims.claim(id, cap, lease(state)).await? {
        (Claim::Claimed, Some(message)) => message,
        (Claim::Busy, _) => return Err(Error::Busy),
        (Claim::Held, _) => {
            metrics::counter!("taskmesh_notify_sms_total", "outcome" => "over_cap").increment(1);
            return Ok(());
        }
        _ => return Ok(()),
    };
    let Some(provider) = provider else {
        state
            .claims
            .settle(id, "skipped", Some("sms is off"))
            .await?;
        return Ok(());
    };
    let content = &message.content;
    let mut body = content.title.clone();
    if let Some(link) = &content.link {
        body.push(' ');
        body.push_str(link);
    }
    let body: String = body.chars().take(320).collect();
    let sent = provider.send(&content.to, &body);
    match shared::trace::span::call("send sms", super::mail::channel("sms"), sent).await {
        Ok(()) => {
            state.claims.settle(id, "sent", None).await?;
            metrics::counter!("taskmesh_notify_sms_total", "outcome" => "sent").increment(1);
            Ok(())
        }
        Err(err @ SmsError::Unreachable(_)) => {
            messages::release(&state.pool, id, None).await?;
            Err(err.into())
        }
        Err(err) => {
            let text = err.to_string();
            if last_attempt || matches!(err, SmsError::Permanent(_)) {
                state.claims.settle(id, "failed", Some(&text)).await?;
                metrics::counter!("taskmesh_notify_sms_total", "outcome" => "failed").increment(1);
            } else {
                messages::release(&state.pool, id, Some(&text)).await?;
            }
            Err(err.into())
        }
    }
}
