//! Queue consumers, thin: decode, then call `service`.

pub mod job_reports;
pub mod users;
