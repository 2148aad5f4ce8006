//! The job engine's settings: job defaults and limits (`jobs`, task-svc) and what a worker
//! process runs (`workers`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::commands::CommandTemplate;

/// Automated tasks (jobs), as task-svc schedules them. A job's own settings override the
/// defaults within the limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Largest accepted job payload (serialised JSON).
    pub max_payload_bytes: usize,
    /// Attempts when a job does not say (the first run counts).
    pub default_max_attempts: u32,
    /// Backoff before the first retry; doubled per retry, with ±25 % jitter, capped.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How long one run may take when a job does not say.
    pub default_timeout_secs: u64,
    /// Upper bound of any job's timeout.
    pub max_timeout_secs: u64,
    /// A worker whose last heartbeat is older than this is listed as dead.
    pub worker_dead_after_secs: u64,
    /// How often the cron scheduler looks for due recurring jobs.
    pub cron_poll_ms: u64,
    /// A dispatch whose runs were lost (their worker died) this many times is dead-lettered:
    /// it is probably what kills the workers.
    pub max_lost_runs: u32,
    /// Pools anyone may name, besides `workers.pools` and the pools an admin opened by naming
    /// them in a job; members naming any other get 422.
    pub pools: Vec<String>,
    /// The shortest time between two ticks of a member's cron job.
    pub member_min_cron_interval_secs: u64,
    /// Live cron templates per member.
    pub member_max_cron_templates: u32,
    /// A member's jobs waiting or running at once (scheduled, queued, running, retrying; cron
    /// templates not counted).
    pub member_max_live_jobs: u32,
    /// The longest `timeout_secs` a member may give (admins: `max_timeout_secs`).
    pub member_max_timeout_secs: u64,
    /// The longest `sleep` a member's job may ask for.
    pub member_max_sleep_ms: u64,
    /// Most steps one workflow may have (`POST /api/v1/workflows`), and most runs of one map.
    pub workflow_max_steps: u32,
    /// Largest inputs (the results of the steps it needs, as JSON) a workflow step is handed;
    /// a step whose inputs are larger dies with the reason.
    pub workflow_max_inputs_bytes: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            default_max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            default_timeout_secs: 300,
            max_timeout_secs: 24 * 3600,
            worker_dead_after_secs: 15,
            cron_poll_ms: 500,
            max_lost_runs: 5,
            pools: vec!["default".into()],
            member_min_cron_interval_secs: 60,
            member_max_cron_templates: 100,
            member_max_live_jobs: 10_000,
            member_max_timeout_secs: 3600,
            member_max_sleep_ms: 600_000,
            workflow_max_steps: 2_000,
            workflow_max_inputs_bytes: 1024 * 1024,
        }
    }
}

/// A worker process: which pools it serves, how much at once, and what its built-in handlers may
/// reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Pools whose queues (`<ns>.jobs.<pool>`) this worker consumes.
    pub pools: Vec<String>,
    /// Jobs run at once by this process (across its pools).
    pub concurrency: usize,
    /// Unacked dispatches held per pool queue; 0: four per slot (4 × concurrency) for running
    /// and waiting jobs, growing to sixteen per slot while finished ones await their report's
    /// confirm (a dispatch is acked only then; see the worker's `holding`). Held jobs start most
    /// urgent first. Set it to the concurrency for long jobs spread over many workers, so that
    /// no job waits in one worker while another is idle.
    pub prefetch: u16,
    /// On SIGTERM, how long running jobs may take to finish before they are handed back.
    pub shutdown_grace_secs: u64,
    /// How often the worker reports itself in Redis.
    pub heartbeat_secs: u64,
    /// A job still running after this long is reported started (`job.started`, status
    /// `running`); a quicker one is reported once, when it finishes.
    pub report_started_after_ms: u64,
    /// The worker's id; empty: `<host>-<random>`.
    pub id: String,
    /// Hosts, IP addresses or CIDR ranges the `http` kind may call although they are loopback,
    /// private or link-local (refused by default: SSRF guard).
    pub http_allow: Vec<String>,
    /// Largest response body the `http` kind records.
    pub http_max_response_bytes: usize,
    /// The commands the `command` kind may run, by name: each a program (absolute path) and
    /// its argument template, whose `{name}` placeholders are the only thing a job gives
    /// ([`crate::commands`]); empty: the kind is off.
    pub commands: BTreeMap<String, CommandTemplate>,
    /// Whether a command reaches the network: `none` (default) runs it in a network namespace
    /// of its own (no interface but a loopback that is down), so it reaches no address, the
    /// platform's PostgreSQL, RabbitMQ and Redis included (Unix sockets with a path on the file
    /// system are not network); `shared` gives it the worker's network.
    pub command_network: CommandNetwork,
}

/// `workers.command_network`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CommandNetwork {
    #[default]
    None,
    Shared,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            pools: vec!["default".into()],
            concurrency: 16,
            prefetch: 0,
            shutdown_grace_secs: 30,
            heartbeat_secs: 5,
            report_started_after_ms: 200,
            id: String::new(),
            http_allow: Vec::new(),
            http_max_response_bytes: 64 * 1024,
            commands: BTreeMap::new(),
            command_network: CommandNetwork::None,
        }
    }
}
