//! The event fan-out: each event that concerns people becomes their notifications, once.

use shared::consumer::{BatchHandler, Handler, HandlerError, Incoming};

use crate::service::fanout::{self, Error};
use crate::AppState;

/// Events applied in one transaction at most.
const COMMIT_EVERY: usize = 256;

pub struct FanOut {
    pub state: AppState,
}

impl From<Error> for HandlerError {
    fn from(err: Error) -> Self {
        match err {
            Error::Db(e) => e.into(),
            Error::Malformed(e) => super::reject(e),
        }
    }
}

impl Handler for FanOut {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        if !fanout::needs_work(&message.event)? {
            return Ok(());
        }
        let mut tx = self.state.pool.begin().await?;
        fanout::apply(&self.state, &mut tx, &[&message.event]).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl BatchHandler for FanOut {
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        let mut work = Vec::with_capacity(messages.len());
        for message in messages {
            if fanout::needs_work(&message.event)? {
                work.push(message);
            }
        }
        if work.is_empty() {
            return Ok(());
        }
        // A batch of task events can be thousands: committed in parts, so that the mail and
        // webhooks of the first part are on their way while the rest is written. A failure
        // after some parts committed is safe: the messages are then handled one by one, and the
        // events already applied are skipped as duplicates.
        let events: Vec<_> = work.iter().map(|m| &m.event).collect();
        for part in events.chunks(COMMIT_EVERY) {
            let mut tx = self.state.pool.begin().await?;
            fanout::apply(&self.state, &mut tx, part).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
