//! What user-svc does, called by [`crate::http`] and at startup: accounts, sign-in, sessions,
//! signing keys. Uses [`crate::domain`] for the rules, [`crate::store`] for SQL and
//! [`crate::infra`] for Redis and cryptography.

pub mod accounts;
pub mod auth;
pub mod keys;
pub mod recovery;
pub mod sessions;
pub mod tokens;
pub mod verification;
