//! Test support (feature `testkit`): an isolated environment per test on the real services.
//!
//! Each [`TestEnv`] has its own databases (`tm_<id>_<service>`, dropped when the env drops), its
//! own RabbitMQ namespace (`test-<id>.*`, deleted when the env drops) and its own Redis key prefix,
//! so tests run in parallel against one PostgreSQL, RabbitMQ and Redis without seeing each other.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::config::{AmqpConfig, Config, RedisConfig};
use crate::topology::management::{encode, ensure_worker_user, Management};

/// One test's slice of the real services.
#[derive(Debug)]
pub struct TestEnv {
    pub id: String,
    pub config: Config,
    /// The workers' own Redis user, once made: its name and URL.
    worker_redis: std::sync::OnceLock<(String, SecretString)>,
    /// The workers' own RabbitMQ user, once made: its name and URL.
    worker_amqp: std::sync::OnceLock<(String, SecretString)>,
}

impl TestEnv {
    pub fn new() -> Self {
        init_tracing();
        let id = Uuid::new_v4().simple().to_string()[..12].to_string();
        let mut config = Config::default();
        if let Ok(url) = std::env::var("TASKMESH_POSTGRES__URL") {
            config.postgres.url = url.into();
        }
        if let Ok(url) = std::env::var("TASKMESH_AMQP__URL") {
            config.amqp.url = url.into();
        }
        if let Ok(url) = std::env::var("TASKMESH_REDIS__URL") {
            config.redis.url = url.into();
        }
        config.postgres.max_connections = 5;
        config.internal.secret = Some(crate::internal::generate_secret());
        config.amqp.namespace = format!("test-{id}");
        // A backstop: queues a crashed test leaves behind vanish five minutes after last use.
        // A test that ends normally deletes its queues at once (see `Drop`), because hundreds of
        // idle quorum queues slow the whole broker down.
        config.amqp.queue_expires_ms = Some(300_000);
        config.redis.key_prefix = format!("test:{id}:");
        config.consumer.retry_base_ms = 100;
        config.consumer.retry_max_ms = 2_000;
        config.consumer.max_attempts = 4;
        config.outbox.poll_interval_ms = 200;
        // Mail without an SMTP server goes to files: this environment's own folder.
        config.smtp.mail_dir = std::env::temp_dir()
            .join(format!("taskmesh-test-{id}-mail"))
            .display()
            .to_string();
        // Uploads go to this environment's own folder too.
        config.files.dir = std::env::temp_dir()
            .join(format!("taskmesh-test-{id}-media"))
            .display()
            .to_string();
        let port0 = SocketAddr::from(([127, 0, 0, 1], 0));
        for (svc, name) in [
            (&mut config.user, "users"),
            (&mut config.task, "tasks"),
            (&mut config.notify, "notify"),
            (&mut config.media, "media"),
            (&mut config.gateway, ""),
            (&mut config.worker, ""),
        ] {
            svc.bind = port0;
            svc.database = if name.is_empty() {
                String::new()
            } else {
                format!("tm_{id}_{name}")
            };
        }
        Self {
            id,
            config,
            worker_redis: std::sync::OnceLock::new(),
            worker_amqp: std::sync::OnceLock::new(),
        }
    }

    /// The URL of this env's own RabbitMQ user for workers (`test-<id>-worker`, with the
    /// permissions of [`crate::topology::worker_permissions`] on this env's namespace), made on
    /// first use and deleted when the env drops.
    pub fn worker_amqp_url(&self) -> SecretString {
        let (_, url) = self.worker_amqp.get_or_init(|| {
            let (amqp, id) = (self.config.amqp.clone(), self.id.clone());
            on_own_runtime(async move { worker_amqp_user(&amqp, &id).await })
                .expect("the workers' RabbitMQ user is made")
        });
        url.clone()
    }

    /// The URL of this env's own Redis user for workers (`test-<id>-worker`, with the rules of
    /// [`crate::cache::worker_acl_rules`] on this env's prefix), made on first use and deleted
    /// when the env drops.
    pub fn worker_redis_url(&self) -> SecretString {
        let (_, url) = self
            .worker_redis
            .get_or_init(|| worker_user(&self.config.redis, &self.id));
        url.clone()
    }

    fn databases(&self) -> Vec<String> {
        [
            &self.config.user,
            &self.config.task,
            &self.config.notify,
            &self.config.media,
        ]
        .iter()
        .map(|s| s.database.clone())
        .collect()
    }
}

/// Makes the workers' Redis user of env `id`: its name and URL.
fn worker_user(redis: &RedisConfig, id: &str) -> (String, SecretString) {
    let user = format!("test-{id}-worker");
    let password = Uuid::new_v4().simple().to_string();
    let mut conn = redis_admin(redis).expect("Redis runs (scripts/test starts it)");
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(crate::cache::worker_acl_rules(&redis.key_prefix))
        .query::<()>(&mut conn)
        .expect("ACL SETUSER for the workers' user");
    let url = signed_in_as(&redis.url, &user, &password);
    (user, url)
}

/// `url` with `user` and `password` in place of its own.
fn signed_in_as(url: &SecretString, user: &str, password: &str) -> SecretString {
    let mut url = url::Url::parse(url.expose_secret()).expect("a dependency's URL");
    url.set_username(user).expect("the URL takes a user");
    url.set_password(Some(password))
        .expect("the URL takes a password");
    url.to_string().into()
}

/// A blocking connection as the services' Redis user.
fn redis_admin(redis: &RedisConfig) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(redis.url.expose_secret())?
        .get_connection_with_timeout(Duration::from_secs(5))
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some((user, _)) = self.worker_redis.get() {
            if let Ok(mut conn) = redis_admin(&self.config.redis) {
                let _: redis::RedisResult<()> =
                    redis::cmd("ACL").arg("DELUSER").arg(user).query(&mut conn);
            }
        }
        let config = self.config.postgres.clone();
        let databases = self.databases();
        let amqp = self.config.amqp.clone();
        let _ = std::fs::remove_dir_all(&self.config.smtp.mail_dir);
        let _ = std::fs::remove_dir_all(&self.config.files.dir);
        let worker_amqp = self.worker_amqp.get().map(|(user, _)| user.clone());
        // Drop runs inside the test's runtime, which must not block on its own futures.
        on_own_runtime(async move {
            delete_queues(&amqp).await;
            if let Some(user) = worker_amqp {
                delete_amqp_user(&amqp, &user).await;
            }
            use sqlx::Connection;
            let Ok(url) = crate::db::database_url(&config, "postgres") else {
                return;
            };
            let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else {
                return;
            };
            for db in databases {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        });
    }
}

/// Deletes every queue and the exchange of this test's namespace through the management API.
/// Without the management plugin the queues' `x-expires` removes them later.
async fn delete_queues(amqp: &AmqpConfig) {
    use reqwest::Method;
    let Ok(api) = Management::of(amqp) else {
        return;
    };
    let prefix = format!("{}.", amqp.namespace);
    let listed = format!("queues/{}?columns=name", api.vhost());
    let Ok(response) = api.send(Method::GET, &listed, None).await else {
        return;
    };
    let Ok(queues) = response.json::<Vec<serde_json::Value>>().await else {
        return;
    };
    let names = queues
        .iter()
        .filter_map(|q| q["name"].as_str())
        .filter(|name| name.starts_with(&prefix));
    for name in names {
        let path = format!("queues/{}/{}", api.vhost(), encode(name));
        let _ = api.send(Method::DELETE, &path, None).await;
    }
    let exchange = encode(&format!("{prefix}events"));
    let path = format!("exchanges/{}/{exchange}", api.vhost());
    let _ = api.send(Method::DELETE, &path, None).await;
}

/// Makes the workers' RabbitMQ user of env `id` on the vhost of `amqp.url`: its name and URL.
async fn worker_amqp_user(amqp: &AmqpConfig, id: &str) -> (String, SecretString) {
    let user = format!("test-{id}-worker");
    let password = Uuid::new_v4().simple().to_string();
    ensure_worker_user(amqp, &user, &password)
        .await
        .unwrap_or_else(|e| panic!("the workers' RabbitMQ user {user} is made: {e}"));
    let url = signed_in_as(&amqp.url, &user, &password);
    (user, url)
}

/// Deletes a user through the management API.
async fn delete_amqp_user(amqp: &AmqpConfig, user: &str) {
    if let Ok(api) = Management::of(amqp) {
        let path = format!("users/{}", encode(user));
        let _ = api.send(reqwest::Method::DELETE, &path, None).await;
    }
}

/// Runs `work` to its end on a runtime of its own, in a thread of its own (a test's runtime must
/// not block on its own futures).
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(runtime.block_on(work))
    })
    .join()
    .ok()
    .flatten()
}

/// Logs to the test's captured output; `RUST_LOG` picks the level (default `warn`).
pub fn init_tracing() {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_test_writer())
        .try_init();
}

/// Polls `probe` until it returns `Some`, failing the test with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
