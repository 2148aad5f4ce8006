//! Periodic loops, thin: each calls `service`.

pub mod cron;
