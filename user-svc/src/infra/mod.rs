//! Redis and cryptography: the session mirror, the login throttle, password hashing, token
//! signing.

pub mod hashing;
pub mod mirror;
pub mod signing;
pub mod throttle;
