//! Periodic loops, thin: each calls `service`.

pub mod cron;
pub mod gauges;
pub mod limits;
pub mod pool_mirror;
pub mod retrain;
