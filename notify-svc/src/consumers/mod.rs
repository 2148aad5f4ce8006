//! notify-svc's consumers: the event fan-out, and the queues of mails and texts to send. Each
//! maps the service's errors to the consumer's retry or dead letter, here and nowhere else.

pub mod events;
pub mod mail;
pub mod sms;

use shared::consumer::HandlerError;

fn reject(err: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Reject(err.into())
}
