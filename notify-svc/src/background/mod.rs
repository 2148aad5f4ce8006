//! notify-svc's loops: the digest of held mail (webhook deliveries run in [`crate::webhooks`]).

pub mod digest;
pub mod gauges;
