//! The use cases: fanning an event out to the people and channels it concerns, changing
//! preferences, signing the links mail carries, and claiming messages to send in batches.

pub mod claims;
pub mod fanout;
pub mod links;
pub mod mail;
pub mod preferences;
pub mod sms;
