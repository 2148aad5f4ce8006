//! The event fan-out: each event that concerns people becomes their notifications, once.

use shared::consumer::{BatchHandler, Handler, HandlerError, Incoming};

use crate::service::fanout::{self, Error};
use crate::AppState;

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
        if !fanout::concerns(&message.event.event_type) {
            return Ok(());
        }
        let mut tx = self.state.pool.begin().await?;
        fanout::apply(&self.state, &mut tx, &message.event).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl BatchHandler for FanOut {
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        if !messages
            .iter()
            .any(|m| fanout::concerns(&m.event.event_type))
        {
            return Ok(());
        }
        let mut tx = self.state.pool.begin().await?;
        for message in messages {
            fanout::apply(&self.state, &mut tx, &message.event).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
