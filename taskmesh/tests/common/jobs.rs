//! Helpers for job tests: worker processes (the real `taskmesh serve worker` binary), an HTTP
//! endpoint whose effects land in PostgreSQL under a unique idempotency key, and job requests.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use shared::testkit::eventually;

use super::{App, WAIT};

/// A worker process serving `pools` of the app's deployment.
pub struct WorkerProcess {
    pub id: String,
    child: tokio::process::Child,
    /// The address its health and metrics endpoint listens on, once it logged it.
    listening: tokio::sync::watch::Receiver<Option<String>>,
}

impl WorkerProcess {
    /// Starts `taskmesh serve worker` with the workers' RabbitMQ and Redis users, serving
    /// `pools`, and waits
    /// until it heartbeats. `extra` adds `TASKMESH_*` settings.
    pub async fn start(app: &App, id: &str, pools: &[&str], extra: &[(&str, &str)]) -> Self {
        let c = &app.env.config;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskmesh"));
        command
            .args(["serve", "worker"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_CLAIMS", "1")
            .env(
                "TASKMESH_AMQP__URL",
                app.env.worker_amqp_url().expose_secret(),
            )
            .env("TASKMESH_AMQP__NAMESPACE", &c.amqp.namespace)
            .env(
                "TASKMESH_REDIS__URL",
                app.env.worker_redis_url().expose_secret(),
            )
            .env("TASKMESH_REDIS__KEY_PREFIX", &c.redis.key_prefix)
            .env("TASKMESH_WORKER__BIND", "127.0.0.1:0")
            .env("TASKMESH_WORKERS__ID", id)
            .env("TASKMESH_WORKERS__POOLS", format!("[{}]", pools.join(",")))
            .env("TASKMESH_WORKERS__HTTP_ALLOW", "[\"127.0.0.1\"]")
            .env("TASKMESH_WORKERS__HEARTBEAT_SECS", "1")
            .env("TASKMESH_LOG__FILTER", "warn,worker=info,taskmesh=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(expires) = c.amqp.queue_expires_ms {
            command.env("TASKMESH_AMQP__QUEUE_EXPIRES_MS", expires.to_string());
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the taskmesh binary starts");
        let listening = read_logs(child.stdout.take().expect("piped"));
        let worker = Self {
            id: id.to_string(),
            child,
            listening,
        };
        let admin = app.admin_token().await;
        eventually(&format!("worker {id} heartbeats"), WAIT, || async {
            worker_state(app, &admin, id)
                .await
                .filter(|s| s == "alive")
                .map(|_| ())
        })
        .await;
        worker
    }

    /// The address of its health and metrics endpoint (bound to port 0: the one it was given).
    pub async fn addr(&self) -> String {
        let mut listening = self.listening.clone();
        let addr = tokio::time::timeout(WAIT, listening.wait_for(Option::is_some))
            .await
            .expect("the worker logs the address it listens on")
            .expect("its logs are read");
        addr.clone().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// `kill -9`: no chance to settle anything.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, then the exit status (within the deadline).
    pub async fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.exited(deadline).await
    }

    /// The exit status, once the process ended by itself (within the deadline).
    pub async fn exited(&mut self, deadline: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(deadline, self.child.wait())
            .await
            .expect("the worker exits within the deadline")
            .unwrap()
    }
}

/// Reads a worker's logs (JSON lines on its stdout) until it ends, for the address it listens
/// on; passes them on with TASKMESH_TEST_WORKER_LOGS=1, for a failing run.
fn read_logs(stdout: tokio::process::ChildStdout) -> tokio::sync::watch::Receiver<Option<String>> {
    use tokio::io::AsyncBufReadExt;
    let (found, listening) = tokio::sync::watch::channel(None);
    let echo = std::env::var_os("TASKMESH_TEST_WORKER_LOGS").is_some();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                println!("{line}");
            }
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["message"] == "listening" {
                found.send_replace(entry["addr"].as_str().map(String::from));
            }
        }
    });
    listening
}

/// The worker's state as `GET /api/v1/workers` lists it.
pub async fn worker_state(app: &App, admin: &str, id: &str) -> Option<String> {
    let (status, body) = app.get("/api/v1/workers", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()?
        .iter()
        .find(|w| w["id"] == id)
        .map(|w| w["state"].as_str().unwrap().to_string())
}

/// An HTTP endpoint that does "work" for `http` jobs: each effect is a row under the request's
/// `Idempotency-Key` (unique), so a repeated call cannot make a second effect; `calls` counts
/// how often each key was seen.
#[derive(Clone)]
pub struct Effects {
    pub url: String,
    pub db: sqlx::PgPool,
    /// While set, every call answers 500.
    pub broken: Arc<AtomicBool>,
    /// Calls started and not yet answered.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

#[derive(serde::Deserialize)]
struct EffectQuery {
    /// Work this long before recording the effect.
    delay_ms: Option<u64>,
    /// Answer 500 to this many calls per key first.
    fail_times: Option<u32>,
}

async fn effect(
    State(effects): State<Effects>,
    Query(query): Query<EffectQuery>,
    headers: HeaderMap,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let calls = {
        let mut seen = effects.seen.lock().unwrap();
        let calls = seen.entry(key.clone()).or_default();
        *calls += 1;
        *calls
    };
    if effects.broken.load(Ordering::SeqCst) || calls <= query.fail_times.unwrap_or(0) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    effects.in_flight.fetch_add(1, Ordering::SeqCst);
    let _answered = Answered(&effects.in_flight);
    if let Some(ms) = query.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    sqlx::query(
        "INSERT INTO test_effects (key) VALUES ($1)
         ON CONFLICT (key) DO UPDATE SET calls = test_effects.calls + 1",
    )
    .bind(&key)
    .execute(&effects.db)
    .await
    .unwrap();
    StatusCode::OK
}

/// Counts a call as answered when dropped (also when its caller hung up mid-call).
struct Answered<'a>(&'a std::sync::atomic::AtomicUsize);
impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Effects {
    pub async fn start(app: &App) -> Self {
        let db = app.db(&app.env.config.task.database).await;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS test_effects (
                key text PRIMARY KEY, calls integer NOT NULL DEFAULT 1)",
        )
        .execute(&db)
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let effects = Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            db,
            broken: Arc::new(AtomicBool::new(false)),
            in_flight: Default::default(),
            seen: Arc::new(Mutex::new(HashMap::new())),
        };
        let router = Router::new()
            .route("/effect", post(effect))
            .with_state(effects.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        effects
    }

    /// A job payload calling the endpoint.
    pub fn job(&self, query: &str) -> Value {
        json!({ "method": "POST", "url": format!("{}/effect?{query}", self.url) })
    }

    /// Calls started and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// (distinct effects, effects recorded more than once).
    pub async fn counts(&self) -> (i64, i64) {
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE calls > 1) FROM test_effects")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

impl App {
    /// Signs up the bootstrap admin (the app must be started with
    /// `auth.bootstrap_admin_email = ADMIN`) once; returns a token.
    pub async fn admin_token(&self) -> String {
        let login = self.login(ADMIN, super::PASSWORD).await;
        if login.status == 200 {
            return login.text("access_token");
        }
        self.sign_up_verified(ADMIN).await
    }

    /// Creates an automated task; returns the task.
    pub async fn create_job(&self, token: &str, title: &str, job: Value) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/tasks",
                Some(token),
                json!({ "title": title, "job": job }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn task(&self, token: &str, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/tasks/{id}"), Some(token)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the task reaches `status`; returns it.
    pub async fn wait_status(&self, token: &str, id: &str, status: &str) -> Value {
        eventually(&format!("task {id} is {status}"), WAIT, || async {
            let task = self.task(token, id).await;
            (task["status"] == status).then_some(task)
        })
        .await
    }

    /// The current dispatch id of task `id`'s job, as task-svc stored it.
    pub async fn dispatch_id(&self, id: &str) -> uuid::Uuid {
        let db = self.db(&self.env.config.task.database).await;
        sqlx::query_scalar("SELECT dispatch_id FROM jobs WHERE task_id = $1")
            .bind(uuid::Uuid::parse_str(id).unwrap())
            .fetch_one(&db)
            .await
            .unwrap()
    }

    /// Publishes `event` on the deployment's events exchange as a worker would (routing key =
    /// its type, message id = its id), confirmed.
    pub async fn publish_as_worker<T: shared::events::EventPayload>(
        &self,
        event: &shared::events::CloudEvent<T>,
    ) {
        // As a worker would: with the workers' own RabbitMQ user.
        let mut amqp = self.env.config.amqp.clone();
        amqp.url = self.env.worker_amqp_url();
        let broker = shared::broker::Broker::new(&amqp, "test-playing-a-worker");
        let mut message = shared::broker::OutgoingMessage::new(
            broker.events_exchange(),
            T::TYPE,
            serde_json::to_vec(event).unwrap(),
        );
        message.message_id = Some(event.id.to_string());
        shared::broker::Publisher::new(broker.clone())
            .publish(&message)
            .await
            .unwrap();
        broker.close().await;
    }

    /// `POST /api/v1/tasks/{id}/cancel`.
    pub async fn cancel(&self, token: &str, id: &str) -> super::Reply {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            Some(token),
            None,
        )
        .await
    }

    pub async fn attempts(&self, token: &str, id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/v1/tasks/{id}/attempts"), Some(token))
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

pub const ADMIN: &str = "admin@example.com";

/// `workers.commands` from (name, program, argument template) triples.
pub fn commands(
    list: &[(&str, &str, &[&str])],
) -> std::collections::BTreeMap<String, shared::commands::CommandTemplate> {
    list.iter()
        .map(|(name, program, args)| {
            let template = shared::commands::CommandTemplate {
                program: program.to_string(),
                args: args.iter().map(|a| a.to_string()).collect(),
            };
            (name.to_string(), template)
        })
        .collect()
}

impl App {
    /// Lets members create `command` jobs in `pool` (as the admin).
    pub async fn grant_commands(&self, pool: &str) {
        let admin = self.admin_token().await;
        let (status, body) = self
            .post(
                &format!("/api/v1/admin/pools/{pool}/commands/grant"),
                Some(&admin),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["granted"], true, "{body}");
    }
}

/// Messages ready in `queue`, straight from the broker (the management API's figures lag).
pub async fn queue_depth(app: &App, queue: &str) -> u32 {
    let broker = shared::broker::Broker::new(&app.env.config.amqp, "test");
    let channel = broker.channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue,
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    declared.message_count()
}

/// A timestamp field of a reply (`started_at`, `finished_at`, …), which must be set.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time, not {value}"))
        .parse()
        .unwrap()
}

/// Settings for a job test app: the admin, no API rate limit, the in-process worker on its own
/// pool with the test endpoint allowed, quick heartbeats.
pub fn job_config(c: &mut shared::Config) {
    c.auth.bootstrap_admin_email = Some(ADMIN.into());
    c.rate_limit.api_requests = 1_000_000;
    c.workers.pools = vec!["inproc".into()];
    // The pools the tests' own worker processes serve, open to members (jobs.pools).
    c.jobs.pools = [
        "default", "bulk", "busy", "crash", "ghost", "graceful", "later", "pause", "py", "restart",
    ]
    .map(String::from)
    .to_vec();
    c.workers.http_allow = vec!["127.0.0.1".into()];
    c.workers.heartbeat_secs = 1;
    c.jobs.backoff_base_ms = 100;
    c.jobs.backoff_max_ms = 1000;
    c.jobs.cron_poll_ms = 100;
}
