//! The mail queue: one `notify.mail` command per mail. An SMTP server that cannot be reached
//! holds the mail (no attempt spent, tried again at most 2 s apart) until it is back, as a
//! database outage does; one that answers "later" (4xx) is retried through the consumer's delay
//! queues and dead-lettered after its attempts; one that refuses for good (5xx) dead-letters it
//! at once.

use std::sync::Arc;

use shared::consumer::{Handler, HandlerError, Incoming};
use shared::events::MailDue;

use crate::channels::mail::{Mailer, SendError};
use crate::service::mail::{self, Error};
use crate::AppState;

pub struct MailSender {
    pub state: AppState,
    pub mailer: Arc<Mailer>,
}

impl Handler for MailSender {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let due: MailDue = message.event.decode().map_err(super::reject)?;
        let last = message.attempt >= self.state.config.consumer.max_attempts;
        match mail::deliver(&self.state, &self.mailer, due.message_id, last).await {
            Ok(_) => Ok(()),
            Err(Error::Db(e)) => Err(e.into()),
            // Held like an outage (no attempt spent, tried again at most 2 s apart) until the
            // other claim is settled (then this command has nothing to do) or lapses (its
            // sender died: this one sends).
            Err(err @ Error::Busy) => Err(HandlerError::Unavailable(err.into())),
            Err(Error::Send(SendError::Permanent(why))) => {
                Err(HandlerError::Reject(anyhow::anyhow!(why)))
            }
            Err(Error::Send(SendError::Transient(why))) => {
                Err(HandlerError::Retry(anyhow::anyhow!(why)))
            }
            Err(Error::Send(SendError::Unreachable(why))) => {
                Err(HandlerError::Unavailable(anyhow::anyhow!(why)))
            }
        }
    }
}
