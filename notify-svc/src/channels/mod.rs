//! How a message leaves notify-svc: mail ([`mail`], rendered by [`templates`]) and SMS ([`sms`]).

pub mod mail;
pub mod sms;
pub mod templates;
