//! Whether a request's session is live.
//!
//! Redis holds the truth the gateway asks (user-svc's mirror, [`shared::sessions`]); asking it on
//! every request costs a round trip, so:
//! - [`known`]: a session Redis called live is trusted for `auth.live_session_cache_ms` (1 s)
//!   while this gateway follows the ends user-svc publishes; an end it hears of is refused at
//!   once.
//! - [`revocations`]: follows those ends (Redis pub/sub); without the subscription nothing is
//!   trusted and every request asks Redis.
//! - [`fallback`]: while Redis cannot be asked, user-svc's answer from PostgreSQL.

pub mod fallback;
pub mod known;
pub mod revocations;

pub use fallback::{check_without_redis, ended, Fallback};
