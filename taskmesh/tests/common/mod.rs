//! The test application: every service running on port 0 in its own test environment, and
//! typed helpers for requests through the gateway.
#![allow(dead_code)]

pub mod browser;
pub mod jobs;
pub mod media;
pub mod notify;
pub mod stream;
pub mod workflows;

use std::time::Duration;

use serde_json::{json, Value};
use shared::testkit::{eventually, TestEnv};
use taskmesh::{Stack, WorkerCredentials};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

pub const PASSWORD: &str = "correct horse battery staple";

pub struct App {
    pub env: TestEnv,
    pub stack: Option<Stack>,
    pub api: String,
    pub http: reqwest::Client,
}

impl App {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts every service with a config adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut shared::Config)) -> Self {
        let mut env = TestEnv::new();
        adjust(&mut env.config);
        let stack = Self::stack(&env).await;
        Self {
            api: stack.api_url(),
            stack: Some(stack),
            env,
            http: reqwest::Client::new(),
        }
    }

    async fn stack(env: &TestEnv) -> Stack {
        // The worker connects as the workers' own Redis and RabbitMQ users, as deployments run
        // it: every test with jobs shows their rules are enough.
        let worker = WorkerCredentials {
            redis_url: Some(env.worker_redis_url()),
            amqp_url: Some(env.worker_amqp_url()),
        };
        let stack =
            Stack::with_worker_credentials(env.config.clone(), worker, CancellationToken::new())
                .await
                .unwrap();
        // Generous: a machine busy with other test processes starts slowly, and start-up is not
        // what these tests measure.
        stack.wait_ready(WAIT * 3).await.unwrap();
        stack
    }

    /// Every service's own address (gateway, user, task, notify, media, worker).
    pub fn service_urls(&self) -> Vec<String> {
        let c = &self.stack.as_ref().expect("started").config;
        [
            &c.gateway.url,
            &c.user.url,
            &c.task.url,
            &c.notify.url,
            &c.media.url,
            &c.worker.url,
        ]
        .into_iter()
        .cloned()
        .collect()
    }

    /// Stops every service and starts them again on the same databases and broker, as a
    /// deployment's restart does; the gateway's address changes.
    pub async fn restart(&mut self) {
        if let Some(stack) = self.stack.take() {
            stack.stop().await.unwrap();
        }
        let stack = Self::stack(&self.env).await;
        self.api = stack.api_url();
        self.stack = Some(stack);
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.api)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Registers and logs in; returns the access token.
    pub async fn sign_up(&self, email: &str) -> String {
        self.sign_up_as(email, "Ada").await
    }

    /// Registers `name` and logs in; returns the access token. The address stays unverified:
    /// nothing is mailed to it ([`App::sign_up_verified`]).
    pub async fn sign_up_as(&self, email: &str, name: &str) -> String {
        self.register(email, name).await;
        self.log_in(email).await
    }

    /// Registers, opens the verification link mailed to the address, and logs in (the bootstrap
    /// admin's address becomes admin then).
    pub async fn sign_up_verified(&self, email: &str) -> String {
        self.sign_up_verified_as(email, "Ada").await
    }

    /// [`App::sign_up_verified`] as `name`.
    pub async fn sign_up_verified_as(&self, email: &str, name: &str) -> String {
        self.register(email, name).await;
        self.verify_email(email).await;
        self.log_in(email).await
    }

    async fn register(&self, email: &str, name: &str) {
        let body = json!({ "email": email, "password": PASSWORD, "display_name": name });
        let (status, body) = self.post("/api/v1/auth/register", None, body).await;
        assert_eq!(status, 201, "{body}");
    }

    /// The newest verification link queued for `email`, read where notify-svc keeps the mail
    /// it sends (whatever the transport).
    pub async fn verification_link(&self, email: &str) -> String {
        let notify = self.db(&self.env.config.notify.database).await;
        eventually("the verification mail queued", WAIT, || async {
            sqlx::query_scalar::<_, String>(
                "SELECT content->>'link' FROM messages
                  WHERE kind = 'email.verification' AND content->>'to' = $1
                  ORDER BY created_at DESC LIMIT 1",
            )
            .bind(email)
            .fetch_optional(&notify)
            .await
            .unwrap()
        })
        .await
    }

    /// Opens the verification link mailed to `email`, with the account's password (which the
    /// bootstrap admin's address needs); returns once notify-svc knows the address is verified
    /// (mail to it goes from then on).
    pub async fn verify_email(&self, email: &str) {
        let link = self.verification_link(email).await;
        let token = link.split_once("token=").expect("a token in the link").1;
        let body = json!({ "token": token, "password": PASSWORD });
        let (status, user) = self.post("/api/v1/auth/verify-email", None, body).await;
        assert_eq!(status, 200, "{user}");
        let id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
        let notify = self.db(&self.env.config.notify.database).await;
        eventually("notify-svc knows the address is verified", WAIT, || async {
            sqlx::query_scalar::<_, bool>("SELECT email_verified FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&notify)
                .await
                .unwrap()
                .filter(|verified| *verified)
        })
        .await;
    }

    /// Logs in with the tests' password; returns the access token.
    pub async fn log_in(&self, email: &str) -> String {
        let password = PASSWORD;
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A pool on one of this test's service databases, to look at what a service stored.
    pub async fn db(&self, database: &str) -> sqlx::PgPool {
        let url = shared::db::database_url(&self.env.config.postgres, database).unwrap();
        sqlx::PgPool::connect(&url).await.unwrap()
    }

    /// Any request; returns status, headers and JSON body (`Null` when not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    /// Logs in; returns the whole token response.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.send(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    /// The id of the token's user.
    /// What the gateway's `Idempotency-Key` cache holds in Redis, entry by entry.
    pub async fn idempotency_entries(&self) -> Vec<String> {
        let url = secrecy::ExposeSecret::expose_secret(&self.env.config.redis.url);
        let client = redis::Client::open(url).unwrap();
        let mut redis = client.get_multiplexed_async_connection().await.unwrap();
        let pattern = format!("{}idempotency:*", self.env.config.redis.key_prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut redis)
            .await
            .unwrap();
        let mut entries = Vec::new();
        for key in keys {
            let value: String = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            entries.push(value);
        }
        entries
    }

    pub async fn user_id(&self, token: &str) -> String {
        let (status, me) = self.get("/api/v1/users/me", Some(token)).await;
        assert_eq!(status, 200, "{me}");
        me["id"].as_str().unwrap().to_string()
    }

    /// The value of the first sample of `name` in `/metrics` at `base` whose line contains
    /// `label` (`""` for any); `None` while there is none.
    pub async fn metric(&self, base: &str, name: &str, label: &str) -> Option<f64> {
        let url = format!("{base}/metrics");
        let text = self.http.get(url).send().await.ok()?.text().await.ok()?;
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(label))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    }

    /// A channel `name` that `owner` created and `member` joined: its JSON.
    pub async fn shared_channel(&self, owner: &str, member: &str, name: &str) -> Value {
        let (status, channel) = self
            .post("/api/v1/channels", Some(owner), json!({ "name": name }))
            .await;
        assert_eq!(status, 201, "{channel}");
        let code = json!({"code": channel["join_code"]});
        let (status, joined) = self.post("/api/v1/channels/join", Some(member), code).await;
        assert_eq!(status, 200, "{joined}");
        channel
    }

    pub async fn notifications(&self, token: &str) -> Vec<Value> {
        let (status, body) = self.get("/api/v1/notifications", Some(token)).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stack) = self.stack.take() {
            // Stop the services before the environment drops their databases.
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(stack.stop())).unwrap();
        }
    }
}

/// The Python of the project's venv (made or reused by `scripts/python-env`: pika, schemathesis).
pub fn venv_python() -> std::path::PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let env_script = std::process::Command::new(format!("{root}/scripts/python-env"))
        .output()
        .expect("scripts/python-env runs");
    assert!(env_script.status.success(), "{env_script:?}");
    let python = String::from_utf8(env_script.stdout).unwrap();
    std::path::PathBuf::from(python.lines().last().unwrap().trim())
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Status, headers and JSON body (`Null` when not JSON) of a response.
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn text(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_default().to_string()
    }
}

/// Another gateway replica on the same config, stopped with `stop`.
pub struct SecondGateway {
    pub api: String,
    pub stop: CancellationToken,
}

impl SecondGateway {
    pub async fn start(app: &App) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let config = app.stack.as_ref().unwrap().config.clone();
        tokio::spawn(api_gateway::run(config, listener, stop.clone()));
        eventually("the second gateway is ready", WAIT, || async {
            let ready = reqwest::get(format!("{api}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success());
            ready.then_some(())
        })
        .await;
        Self { api, stop }
    }
}
