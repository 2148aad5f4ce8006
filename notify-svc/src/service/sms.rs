//! Sending one queued text.

use uuid::Uuid;

use crate::channels::sms::{Provider, SmsError};
use crate::store::messages;
use crate::AppState;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Send(#[from] SmsError),
}

/// Sends the queued text `id` (title and link, cut to 320 characters), unless settled before.
/// Without a provider it is marked skipped.
pub async fn deliver(
    state: &AppState,
    provider: Option<&dyn Provider>,
    id: Uuid,
    last_attempt: bool,
) -> Result<(), Error> {
    let Some(message) = messages::get(&state.pool, id).await? else {
        return Ok(());
    };
    if message.state != "queued" {
        return Ok(());
    }
    let Some(provider) = provider else {
        messages::settle(&state.pool, id, "skipped", Some("sms is off")).await?;
        return Ok(());
    };
    let content = &message.content;
    let mut body = content.title.clone();
    if let Some(link) = &content.link {
        body.push(' ');
        body.push_str(link);
    }
    let body: String = body.chars().take(320).collect();
    match provider.send(&content.to, &body).await {
        Ok(()) => {
            messages::settle(&state.pool, id, "sent", None).await?;
            metrics::counter!("taskmesh_notify_sms_total", "outcome" => "sent").increment(1);
            Ok(())
        }
        Err(err @ SmsError::Unreachable(_)) => Err(err.into()),
        Err(err) => {
            let text = err.to_string();
            if last_attempt || matches!(err, SmsError::Permanent(_)) {
                messages::settle(&state.pool, id, "failed", Some(&text)).await?;
                metrics::counter!("taskmesh_notify_sms_total", "outcome" => "failed").increment(1);
            } else {
                messages::failed_attempt(&state.pool, id, &text).await?;
            }
            Err(err.into())
        }
    }
}
