//! The only code that writes SQL for notify-svc's tables (webhooks keep theirs in
//! `crate::webhooks::store`).

pub mod messages;
pub mod notifications;
pub mod preferences;
pub mod users;
