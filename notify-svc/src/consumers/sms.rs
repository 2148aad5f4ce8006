//! The SMS queue: one `notify.sms` command per text, held while the provider cannot be reached
//! and retried when it answers "later", like mail.

use std::sync::Arc;

use shared::consumer::{Handler, HandlerError, Incoming};
use shared::events::SmsDue;

use crate::channels::sms::{Provider, SmsError};
use crate::service::sms::{self, Error};
use crate::AppState;

pub struct SmsSender {
    pub state: AppState,
    pub provider: Option<Arc<dyn Provider>>,
}

impl Handler for SmsSender {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let due: SmsDue = message.event.decode().map_err(super::reject)?;
        let last = message.attempt >= self.state.config.consumer.max_attempts;
        match sms::deliver(&self.state, self.provider.as_deref(), due.message_id, last).await {
            Ok(()) => Ok(()),
            Err(Error::Db(e)) => Err(e.into()),
            // Held like an outage (no attempt spent, tried again at most 2 s apart) until the
            // other claim is settled (then this command has nothing to do) or lapses (its
            // sender died: this one sends).
            Err(err @ Error::Busy) => Err(HandlerError::Unavailable(err.into())),
            Err(Error::Send(SmsError::Permanent(why))) => {
                Err(HandlerError::Reject(anyhow::anyhow!(why)))
            }
            Err(Error::Send(SmsError::Transient(why))) => {
                Err(HandlerError::Retry(anyhow::anyhow!(why)))
            }
            Err(Error::Send(SmsError::Unreachable(why))) => {
                Err(HandlerError::Unavailable(anyhow::anyhow!(why)))
            }
        }
    }
}
