//! Layered, typed configuration.
//!
//! Values come, lowest priority first, from the defaults in this file (documented in the README's
//! configuration table), an optional TOML file named by `TASKMESH_CONFIG`, and environment
//! variables prefixed `TASKMESH_` with `__` between levels, e.g. `TASKMESH_TASK__BIND=0.0.0.0:8082`
//! or `TASKMESH_POSTGRES__URL=postgres://app:secret@db:5432`.
//!
//! Connection URLs may carry passwords, so they are [`SecretString`]s: they never print.

use std::net::SocketAddr;

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod error;
mod files;
mod jobs;
mod notify;
mod sealing;
mod stream;
pub use error::ConfigError;
pub use files::{FilesConfig, StoreKind};
pub use jobs::{CommandNetwork, JobsConfig, WorkersConfig};
pub use notify::{NotificationsConfig, SmsConfig, SmtpConfig, WebhooksConfig, PREMIUM_PREFIXES};
pub use sealing::SealingConfig;
pub use stream::StreamConfig;

/// `TASKMESH_*` variables that are not settings: read directly by a process, a test or a
/// script (`TASKMESH_CONFIG` names the file above; `TASKMESH_TASK_ID`, `TASKMESH_ATTEMPT` and
/// `TASKMESH_IDEMPOTENCY_KEY` are what the worker gives a `command` job). Any other `TASKMESH_*` variable must be a setting: a misspelt one
/// (`TASKMESH_TASK__BIDN`, `TASKMESH_INTERNAL_SECRET`) stops the process with an error naming it,
/// instead of being ignored while its default applies.
/// The shortest secret accepted (`internal.*`, link secrets).
pub const MIN_SECRET_BYTES: usize = 32;

pub const PROCESS_VARIABLES: &[&str] = &[
    "config",
    "task_id",
    "attempt",
    "idempotency_key",
    "crash",
    "test_worker_logs",
    "python",
    "venv",
    "contract_examples",
    "contract_seed",
];

/// Everything any Taskmesh process needs; each service reads the sections it uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub postgres: PostgresConfig,
    pub amqp: AmqpConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub outbox: OutboxConfig,
    pub consumer: ConsumerConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub cors: CorsConfig,
    pub internal: InternalConfig,
    pub sealing: SealingConfig,
    pub tasks: TasksConfig,
    pub jobs: JobsConfig,
    pub workers: WorkersConfig,
    pub smtp: SmtpConfig,
    pub notifications: NotificationsConfig,
    pub webhooks: WebhooksConfig,
    pub sms: SmsConfig,
    pub files: FilesConfig,
    pub stream: StreamConfig,
    pub gateway: ServiceConfig,
    pub user: ServiceConfig,
    pub task: ServiceConfig,
    pub notify: ServiceConfig,
    pub media: ServiceConfig,
    pub worker: ServiceConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            postgres: PostgresConfig::default(),
            amqp: AmqpConfig::default(),
            redis: RedisConfig::default(),
            log: LogConfig::default(),
            outbox: OutboxConfig::default(),
            consumer: ConsumerConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            cors: CorsConfig::default(),
            internal: InternalConfig::default(),
            sealing: SealingConfig::default(),
            tasks: TasksConfig::default(),
            jobs: JobsConfig::default(),
            workers: WorkersConfig::default(),
            smtp: SmtpConfig::default(),
            notifications: NotificationsConfig::default(),
            webhooks: WebhooksConfig::default(),
            sms: SmsConfig::default(),
            files: FilesConfig::default(),
            stream: StreamConfig::default(),
            gateway: ServiceConfig::new(8080, ""),
            user: ServiceConfig::new(8081, "taskmesh_users"),
            task: ServiceConfig::new(8082, "taskmesh_tasks"),
            notify: ServiceConfig::new(8083, "taskmesh_notify"),
            media: ServiceConfig::new(8084, "taskmesh_media"),
            worker: ServiceConfig::new(8085, ""),
        }
    }
}

impl Config {
    /// Loads defaults, then `$TASKMESH_CONFIG` (a TOML file) if set, then `TASKMESH_*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        // The service sections' own defaults come first as values, so that a file or variable
        // setting one field of a section (`TASKMESH_TASK__URL`) keeps the section's other
        // defaults (its port and database) instead of the type's empty ones.
        let defaults = Config::default();
        let mut figment = Figment::new();
        for (section, service) in [
            ("gateway", defaults.gateway),
            ("user", defaults.user),
            ("task", defaults.task),
            ("notify", defaults.notify),
            ("media", defaults.media),
            ("worker", defaults.worker),
        ] {
            figment = figment.join(Serialized::default(section, service));
        }
        if let Ok(path) = std::env::var("TASKMESH_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment
            .merge(
                Env::prefixed("TASKMESH_")
                    .split("__")
                    .filter(|key| !PROCESS_VARIABLES.iter().any(|v| key == *v)),
            )
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that would only fail later, with a message naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check_url = |name: &str, url: &SecretString, schemes: &[&str]| {
            let parsed = url::Url::parse(url.expose_secret())
                .map_err(|e| ConfigError(format!("{name} is not a URL: {e}")))?;
            if !schemes.contains(&parsed.scheme()) {
                return Err(ConfigError(format!(
                    "{name} must use one of the schemes {schemes:?}"
                )));
            }
            Ok(())
        };
        check_url(
            "postgres.url",
            &self.postgres.url,
            &["postgres", "postgresql"],
        )?;
        check_url("amqp.url", &self.amqp.url, &["amqp", "amqps"])?;
        check_url("redis.url", &self.redis.url, &["redis", "rediss"])?;
        if self.consumer.max_attempts == 0 {
            return Err(ConfigError(
                "consumer.max_attempts must be at least 1".into(),
            ));
        }
        let namespace = &self.amqp.namespace;
        let plain = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
        if namespace.is_empty() || namespace.len() > 64 || !namespace.bytes().all(plain) {
            return Err(ConfigError(format!(
                "amqp.namespace must be 1 to 64 lowercase letters, digits, `-` or `_` (it begins \
                 every exchange and queue name, and the workers' RabbitMQ permissions match it), \
                 not {namespace:?}"
            )));
        }
        if self.amqp.prefetch == 0 {
            return Err(ConfigError("amqp.prefetch must be at least 1".into()));
        }
        if self.workers.concurrency == 0 {
            return Err(ConfigError("workers.concurrency must be at least 1".into()));
        }
        if self.workers.pools.is_empty() {
            return Err(ConfigError(
                "workers.pools must name at least one pool".into(),
            ));
        }
        for (name, template) in &self.workers.commands {
            template
                .validate()
                .map_err(|why| ConfigError(format!("workers.commands.{name}: {why}")))?;
        }
        if self.jobs.backoff_base_ms == 0 || self.jobs.backoff_max_ms < self.jobs.backoff_base_ms {
            return Err(ConfigError(
                "jobs.backoff_base_ms must be at least 1 and at most jobs.backoff_max_ms".into(),
            ));
        }
        for (name, secret) in [
            ("internal.secret", &self.internal.secret),
            ("internal.accepted_secret", &self.internal.accepted_secret),
            ("internal.keys", &self.internal.keys),
            ("internal.accepted_keys", &self.internal.accepted_keys),
            ("files.link_secret", &self.files.link_secret),
            ("notifications.link_secret", &self.notifications.link_secret),
            ("sealing.key", &self.sealing.key),
            ("sealing.previous_key", &self.sealing.previous_key),
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().len() < MIN_SECRET_BYTES)
            {
                return Err(ConfigError(format!(
                    "{name} must be at least {} bytes",
                    MIN_SECRET_BYTES
                )));
            }
        }
        if self.auth.lockout_window_secs == 0 {
            return Err(ConfigError(
                "auth.lockout_window_secs must be at least 1".into(),
            ));
        }
        notify::validate(&self.smtp, &self.notifications, &self.webhooks, &self.sms)?;
        self.files.validate()?;
        self.stream.validate()?;
        if self.auth.access_token_ttl_secs == 0 || self.auth.access_token_ttl_secs > 900 {
            return Err(ConfigError(
                "auth.access_token_ttl_secs must be between 1 and 900 (15 minutes)".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// Server URL without a database name; each service appends its own database.
    pub url: SecretString,
    /// Upper bound of each service's pool.
    pub max_connections: u32,
    /// Create a service's database at start-up when it is missing.
    pub create_databases: bool,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432"),
            max_connections: 10,
            create_databases: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    pub url: SecretString,
    /// Prefix of every exchange and queue name: `<namespace>.events`, `<namespace>.notify-svc`.
    /// Tests use a unique namespace each so they can share one broker.
    pub namespace: String,
    /// `quorum` (replicated, delivery limit; the default) or `classic`.
    pub queue_type: QueueType,
    /// Unacknowledged deliveries a consumer holds at once.
    pub prefetch: u16,
    /// Let unused queues expire after this many milliseconds (tests only; unset in production).
    pub queue_expires_ms: Option<u32>,
    /// Base URL of the RabbitMQ management console, printed by `taskmesh up`; its API is where
    /// `taskmesh worker-amqp-user` makes the workers' own user.
    pub management_url: String,
    /// How long connecting may take, the AMQP handshake included: a broker that accepts the
    /// connection but never answers is tried again (and told about) rather than waited on.
    pub connect_timeout_secs: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace: "taskmesh".into(),
            queue_type: QueueType::Quorum,
            prefetch: 64,
            queue_expires_ms: None,
            management_url: "http://127.0.0.1:15672".into(),
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: SecretString,
    /// Prefix of every key Taskmesh writes; tests use a unique one each.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("redis://127.0.0.1:6379"),
            key_prefix: "taskmesh:".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `auto` (pretty in a terminal, JSON otherwise), `json` or `pretty`.
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is unset.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            filter: "info,sqlx=warn,lapin=warn".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Rows the relay publishes per round trip.
    pub batch_size: u32,
    /// Fallback poll when no NOTIFY arrives (milliseconds).
    pub poll_interval_ms: u64,
    /// Published rows are deleted after this many hours.
    pub retention_hours: u32,
    /// Processed-event records (consumer deduplication) are kept this many hours.
    pub processed_retention_hours: u32,
    /// After the broker returns an event type as unroutable (no queue is bound for it), the
    /// relay marks further rows of that type unroutable without publishing them for this long
    /// (milliseconds), then publishes one again to see whether a queue has been bound since.
    /// 0 publishes every row. Job dispatches and dead letters are always published.
    pub unroutable_recheck_ms: u64,
    /// When small transactions trickle in (the last wake found fewer than 32 rows), how long
    /// the relay waits for more after a commit wakes it (milliseconds): fewer, larger rounds,
    /// at the cost of this much latency. The first event after a quiet second goes at once, and
    /// so does a commit that asks for it (a workflow's released steps).
    pub linger_ms: u64,
    /// Write a transaction's messages that are due at once as one row (decision 35). Every
    /// relay of this version reads such rows, but a relay of an earlier version would publish
    /// one as a single unroutable message and lose what it holds: turn this on once no pod of
    /// an earlier version runs. `taskmesh up` (one process) always writes them.
    pub group_rows: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            poll_interval_ms: 1000,
            retention_hours: 24,
            processed_retention_hours: 24 * 7,
            unroutable_recheck_ms: 1000,
            linger_ms: 20,
            group_rows: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Attempts before a message goes to `<queue>.dlq` (the first delivery counts).
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it (milliseconds).
    pub retry_base_ms: u64,
    /// Upper bound of one retry delay (milliseconds).
    pub retry_max_ms: u64,
    /// Broker-side safety net: deliveries of one message (e.g. a consumer that crashes on it)
    /// after which a quorum queue dead-letters it by itself.
    pub delivery_limit: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            delivery_limit: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `iss` of every access token.
    pub issuer: String,
    /// `aud` of every access token.
    pub audience: String,
    /// Lifetime of an access token, at most 900 seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a session (and its refresh tokens) without a refresh.
    pub session_ttl_secs: u64,
    /// An account registered (or already present) with this email is made admin at start-up.
    pub bootstrap_admin_email: Option<String>,
    /// Logins to one account from one source (an IPv4 address or an IPv6 /64) answered at once
    /// within `lockout_window_secs`; after them the pair waits 1 s, 2 s, 4 s … between attempts.
    pub max_failed_logins_per_source: u32,
    /// Logins from one source to any account within the window before further ones get 429.
    pub max_failed_logins_per_ip: u32,
    /// Logins to one account within the window from every source it has not signed in from in
    /// the last 30 days, together (an attacker with many addresses); known sources are not held.
    pub max_failed_logins_per_account: u32,
    /// How long counts last, and the longest wait between attempts.
    pub lockout_window_secs: u64,
    /// How long the gateway trusts Redis's answer that a session is live, while it hears the
    /// ends user-svc publishes (an end heard is refused at once). 0: Redis is asked on every
    /// request.
    pub live_session_cache_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "taskmesh".into(),
            audience: "taskmesh-api".into(),
            access_token_ttl_secs: 900,
            session_ttl_secs: 30 * 24 * 3600,
            bootstrap_admin_email: None,
            max_failed_logins_per_source: 5,
            max_failed_logins_per_ip: 50,
            max_failed_logins_per_account: 100,
            lockout_window_secs: 900,
            live_session_cache_ms: 1000,
        }
    }
}

/// The gateway's request limits, counted in Redis per window so all replicas share them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Length of one counting window.
    pub window_secs: u64,
    /// Requests per window and client IP to the public auth routes (register, login, refresh).
    pub auth_requests: u64,
    /// Requests per window and user to every authenticated route.
    pub api_requests: u64,
    /// How many proxies in front of the gateway append to `X-Forwarded-For`. 0: the client is the
    /// peer. n: the client is the n-th entry from the right (the address the outermost trusted
    /// proxy saw); entries further left were written by the client and are ignored.
    pub trusted_proxies: u32,
    /// How long the gateway trusts its cached JWK set before fetching it again.
    pub jwks_cache_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            auth_requests: 30,
            api_requests: 600,
            trusted_proxies: 0,
            jwks_cache_secs: 60,
        }
    }
}

/// The task domain's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// `task.due_soon` is published this long before a task's due date.
    pub due_soon_lead_secs: u64,
    /// How long the first page of a user's task list stays cached in Redis.
    pub list_cache_secs: u64,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            due_soon_lead_secs: 3600,
            list_cache_secs: 30,
        }
    }
}

/// Which browser origins may call the API (the gateway answers CORS preflights for them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins such as `https://app.example.com`; empty: no cross-origin access.
    pub allowed_origins: Vec<String>,
}

/// Trust between services (decision 28).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalConfig {
    /// The secret every service (not the workers) shares to sign and check the assertion that
    /// comes with each request between them; at least 32 bytes. `taskmesh up` makes one for its
    /// own run when it is not set; services started one by one refuse to start without it.
    pub secret: Option<SecretString>,
    /// A second secret whose assertions are accepted, never used to sign: for a rotation without
    /// refusals (first every service accepts the new secret here, then every service signs
    /// with it and accepts the old one here, then the old one goes).
    pub accepted_secret: Option<SecretString>,
    /// Instead of `secret` in a service: the keys of the pairs it calls and is called in only
    /// (`caller>callee:<base64>,…`), as `taskmesh keys <service>` prints them from the secret.
    /// A service given these can make assertions only as itself, for the services it calls.
    pub keys: Option<SecretString>,
    /// Keys accepted besides `keys` during a rotation, never used to sign.
    pub accepted_keys: Option<SecretString>,
}

/// Where one service listens, how the others reach it, and its database.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    pub bind: SocketAddr,
    /// Base URL other services (the gateway) use to reach this one.
    pub url: String,
    /// Database name on the PostgreSQL server (empty for services without one).
    pub database: String,
}

impl ServiceConfig {
    fn new(port: u16, database: &str) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            url: format!("http://127.0.0.1:{port}"),
            database: database.into(),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self::new(0, "")
    }
}

#[cfg(test)]
// figment's `Jail` API fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests;
