//! The gateway's live event stream (`GET /api/v1/events/stream`): tickets, heartbeats, how long
//! events stay resumable, and the per-user and per-client limits.

use serde::Deserialize;

use super::error::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// How long a ticket from `POST /api/v1/events/ticket` can be redeemed (once).
    pub ticket_secs: u64,
    /// A comment line is sent after this long without an event, so proxies keep the stream.
    pub heartbeat_secs: u64,
    /// How long events stay in the log for `Last-Event-ID` to resume from.
    pub retention_secs: u64,
    /// Open streams per user, across every gateway replica; one more is refused with 429.
    pub max_streams_per_user: u32,
    /// Open streams from one client address, whoever's, across every gateway replica; one more
    /// is refused with 429.
    pub max_streams_per_address: u32,
    /// Open streams one gateway holds at most; one more is refused with 503.
    pub max_streams: u32,
    /// Events one client may have waiting unsent; a client that falls further behind is dropped
    /// (it reconnects with `Last-Event-ID` and resumes from the log).
    pub client_buffer: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            ticket_secs: 30,
            heartbeat_secs: 15,
            retention_secs: 3600,
            max_streams_per_user: 5,
            max_streams_per_address: 50,
            max_streams: 10_000,
            client_buffer: 256,
        }
    }
}

impl StreamConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("stream.ticket_secs", self.ticket_secs),
            ("stream.heartbeat_secs", self.heartbeat_secs),
            ("stream.retention_secs", self.retention_secs),
            (
                "stream.max_streams_per_user",
                u64::from(self.max_streams_per_user),
            ),
            (
                "stream.max_streams_per_address",
                u64::from(self.max_streams_per_address),
            ),
            ("stream.max_streams", u64::from(self.max_streams)),
            ("stream.client_buffer", self.client_buffer as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        if self.ticket_secs > 300 {
            return Err(ConfigError(
                "stream.ticket_secs is at most 300: a ticket is for opening a stream now".into(),
            ));
        }
        Ok(())
    }
}
