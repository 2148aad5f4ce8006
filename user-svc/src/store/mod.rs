//! All of user-svc's SQL. Functions take a connection or a pool and return `sqlx::Error`.

pub mod keys;
pub mod resets;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod verifications;
