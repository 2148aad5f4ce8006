//! SQL, and only here: each function returns `sqlx::Error`.

pub mod jobs;
pub mod pools;
pub mod runs;
pub mod tasks;
pub mod users;
