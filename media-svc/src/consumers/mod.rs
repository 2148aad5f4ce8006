//! media-svc's consumer of `<ns>.media-svc`: its own `media.uploaded` (make thumbnails) and
//! `task.deleted` (remove the task's files). Maps the service's errors to retries and dead
//! letters, here and nowhere else.

use shared::{
    consumer::{Handler, HandlerError, Incoming},
    events::{EventPayload, MediaUploaded, TaskDeleted},
};

use crate::service::{cleanup, process, Error};
use crate::AppState;

pub struct MediaEvents {
    pub state: AppState,
}

impl From<Error> for HandlerError {
    fn from(err: Error) -> Self {
        match err {
            Error::Db(e) => e.into(),
            // The store is away or refused: later.
            Error::Store(e) => HandlerError::Retry(e.into()),
            other => HandlerError::Reject(other.into()),
        }
    }
}

impl Handler for MediaEvents {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        match message.event.event_type.as_str() {
            MediaUploaded::TYPE => process::process(&self.state, &message.event).await?,
            TaskDeleted::TYPE => {
                cleanup::task_deleted(&self.state, &message.event).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
