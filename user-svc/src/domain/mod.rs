//! The rules of accounts, passwords and sessions. Pure: no I/O, no async.

pub mod account;
pub mod keys;
pub mod password;
pub mod session;
pub mod tokens;
