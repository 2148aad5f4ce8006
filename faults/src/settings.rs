//! How hard and how long each fault runs: `--quick` (CI) or a full run.

use std::time::Duration;

/// How hard and how long.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: &'static str,
    /// Requests a second.
    pub rate: u32,
    pub before: Duration,
    pub hold: Duration,
    pub after: Duration,
    /// Added to every chunk in the latency faults.
    pub latency: Duration,
    /// How often connections are reset in the resets faults.
    pub reset_every: Duration,
    /// How long jobs may take to settle after a fault.
    pub settle: Duration,
    /// How long the SMTP server is down in `smtp:down`.
    pub smtp_down: Duration,
    /// How many mails the SMTP server answers 451 in `smtp:451`.
    pub smtp_reject: u32,
    /// How long the webhook receiver is unreachable in `webhook:down`.
    pub hook_down: Duration,
}

impl Settings {
    pub fn quick() -> Self {
        Self {
            mode: "--quick",
            rate: 10,
            before: Duration::from_secs(2),
            hold: Duration::from_secs(3),
            after: Duration::from_secs(2),
            latency: Duration::from_millis(100),
            reset_every: Duration::from_millis(500),
            settle: Duration::from_secs(60),
            smtp_down: Duration::from_secs(5),
            smtp_reject: 6,
            hook_down: Duration::from_secs(5),
        }
    }

    pub fn full() -> Self {
        Self {
            mode: "full",
            rate: 25,
            before: Duration::from_secs(5),
            hold: Duration::from_secs(15),
            after: Duration::from_secs(5),
            latency: Duration::from_millis(250),
            reset_every: Duration::from_millis(500),
            settle: Duration::from_secs(180),
            smtp_down: Duration::from_secs(12),
            smtp_reject: 40,
            hook_down: Duration::from_secs(10),
        }
    }
}
