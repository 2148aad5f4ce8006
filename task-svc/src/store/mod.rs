//! SQL, and only here: each function returns `sqlx::Error`.

pub mod channels;
pub mod dead;
pub mod jobs;
pub mod pools;
pub mod priority;
pub mod runs;
pub mod tasks;
pub mod users;
