//! The use cases: fanning an event out to the people and channels it concerns, changing
//! preferences, and signing the links mail carries.

pub mod fanout;
pub mod links;
pub mod mail;
pub mod preferences;
pub mod sms;
