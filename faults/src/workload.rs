//! The client side: creates tasks through the gateway at a steady rate (mostly `http` jobs that
//! call the receiver, some people's tasks) and records the outcome of every request as the
//! client saw it.
//!
//! - **ok**: a 2xx answer carrying the task id; the task must exist (and a job must run).
//! - **failed**: a definite answer that nothing was done: a 4xx, a 500 or 503, or a connection
//!   that could not be opened (the request never left). Nothing may exist for it.
//! - **unknown**: a timeout, a connection cut after the request was sent, or a 502/504 (a
//!   gateway that lost its upstream mid-request): it may or may not exist.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{RwLock, Semaphore};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

/// How long the receiver takes to answer a job's call: jobs are running when a fault hits.
const JOB_MS: u64 = 300;

#[derive(Clone, Debug)]
pub enum Outcome {
    Ok(Uuid),
    Failed(String),
    Unknown(String),
}

/// One request the client made.
#[derive(Clone, Debug)]
pub struct Record {
    /// The client's id for the request (in the title and the job's URL).
    pub req: Uuid,
    /// An `http` job (else a person's task).
    pub job: bool,
    pub sent: Instant,
    pub answered: Instant,
    pub outcome: Outcome,
    /// A person's task that was created gets a file attached (`faults-<req>.txt`): what the
    /// client was told of that upload (the media id when ok).
    pub upload: Option<Outcome>,
}

/// The name of the file attached to request `req`'s task.
pub fn file_name(req: Uuid) -> String {
    format!("faults-{req}.txt")
}

/// The API client: one user, a token renewed whenever the API answers 401 (a Redis restart
/// loses sessions).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api: String,
    email: String,
    token: Arc<RwLock<String>>,
    relogin: Arc<tokio::sync::Mutex<Instant>>,
    receiver: String,
    /// The user people's tasks are assigned to: notify-svc tells them (`task.assigned`) in-app,
    /// by mail and by webhook.
    peer: Uuid,
    peer_email: String,
}

fn title(tag: &str, req: Uuid) -> String {
    format!("faults/{tag}/{req}")
}

/// The title prefix of every task made for fault `tag`.
pub fn title_prefix(tag: &str) -> String {
    format!("faults/{tag}/")
}

impl Client {
    /// Registers a fresh user and logs in.
    pub async fn new(api: String, receiver: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let email = format!("faults-{}@example.com", Uuid::new_v4().simple());
        let response = http
            .post(format!("{api}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "display_name": "Fault suite"}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "register: {}", response.status());
        let peer_email = format!("faults-peer-{}@example.com", Uuid::new_v4().simple());
        let response = http
            .post(format!("{api}/api/v1/auth/register"))
            .json(&json!({"email": peer_email, "password": PASSWORD, "display_name": "Fault peer"}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "register: {}", response.status());
        let peer: Value = response.json().await?;
        let peer = peer["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("register answered without an id"))?;
        let client = Self {
            http,
            api,
            email,
            token: Arc::default(),
            relogin: Arc::new(tokio::sync::Mutex::new(
                Instant::now() - Duration::from_secs(3600),
            )),
            receiver,
            peer,
            peer_email,
        };
        client.login().await?;
        Ok(client)
    }

    /// Logs in again; a fresh token for every request from now on.
    pub async fn login(&self) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.api))
            .json(&json!({"email": self.email, "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "login: {}", response.status());
        let body: Value = response.json().await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("login without a token"))?;
        *self.token.write().await = token.to_string();
        Ok(())
    }

    /// The peer opens the verification link notify-svc mailed it (read from notify-svc's
    /// queued mail): only verified addresses are mailed. Returns once notify-svc knows.
    pub async fn verify_peer(&self, notify: &sqlx::PgPool) -> anyhow::Result<()> {
        let link: String = crate::wait_until(
            "the peer's verification mail",
            Duration::from_secs(30),
            || async {
                sqlx::query_scalar(
                    "SELECT content->>'link' FROM messages
                      WHERE kind = 'email.verification' AND content->>'to' = $1",
                )
                .bind(&self.peer_email)
                .fetch_optional(notify)
                .await
                .ok()
                .flatten()
            },
        )
        .await?;
        let token = link
            .split_once("token=")
            .ok_or_else(|| anyhow::anyhow!("a verification link without a token: {link}"))?
            .1;
        let response = self
            .http
            .post(format!("{}/api/v1/auth/verify-email", self.api))
            .json(&json!({ "token": token }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "verify-email: {}",
            response.status()
        );
        crate::wait_until(
            "notify-svc to know the peer's address is verified",
            Duration::from_secs(30),
            || async {
                sqlx::query_scalar::<_, bool>("SELECT email_verified FROM users WHERE id = $1")
                    .bind(self.peer)
                    .fetch_optional(notify)
                    .await
                    .ok()
                    .flatten()
                    .filter(|verified| *verified)
            },
        )
        .await?;
        Ok(())
    }

    /// The peer registers a webhook endpoint at `url` for `task.assigned` (logged in as itself).
    pub async fn register_webhook(&self, url: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/login", self.api))
            .json(&json!({"email": self.peer_email, "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "peer login: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("peer login without a token"))?;
        let response = self
            .http
            .post(format!("{}/api/v1/webhooks", self.api))
            .bearer_auth(token)
            .json(&json!({"url": url, "event_types": ["task.assigned"], "description": "fault suite"}))
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status == 201,
            "registering the webhook endpoint {url}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    /// After a 401: one login at a time, at most one a second.
    async fn renew(&self) {
        let Ok(mut last) = self.relogin.try_lock() else {
            return;
        };
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        *last = Instant::now();
        let _ = self.login().await;
    }

    /// Creates one task or job; returns what the client saw.
    pub async fn create(&self, tag: &str, job: bool) -> Record {
        let req = Uuid::new_v4();
        let body = if job {
            json!({
                "title": title(tag, req),
                "priority": "normal",
                "job": {
                    "kind": "http",
                    "payload": {"method": "POST", "url": format!("{}/effect?req={req}&delay_ms={JOB_MS}", self.receiver)},
                    "max_attempts": 20
                }
            })
        } else {
            json!({"title": title(tag, req), "priority": "normal", "assignee_id": self.peer})
        };
        let token = self.token.read().await.clone();
        let sent = Instant::now();
        let result = self
            .http
            .post(format!("{}/api/v1/tasks", self.api))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        let outcome = self.outcome(result, "id").await;
        let answered = Instant::now();
        let upload = match (&outcome, job) {
            (Outcome::Ok(task), false) => Some(self.attach(&token, *task, req).await),
            _ => None,
        };
        Record {
            req,
            job,
            sent,
            answered,
            outcome,
            upload,
        }
    }

    /// Uploads a small file, named for `req`, to `task`.
    async fn attach(&self, token: &str, task: Uuid, req: Uuid) -> Outcome {
        let part = reqwest::multipart::Part::bytes(format!("fault suite {req}\n").into_bytes())
            .file_name(file_name(req));
        let result = self
            .http
            .post(format!("{}/api/v1/tasks/{task}/attachments", self.api))
            .bearer_auth(token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await;
        self.outcome(result, "items").await
    }

    /// What a request's answer tells the client; an ok answer carries the id it names
    /// (`id`, or `items` for the first file of an upload).
    async fn outcome(
        &self,
        result: Result<reqwest::Response, reqwest::Error>,
        field: &str,
    ) -> Outcome {
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await;
                let id = |v: Value| {
                    let v = if field == "items" {
                        v["items"][0].clone()
                    } else {
                        v
                    };
                    v["id"].as_str().and_then(|id| id.parse().ok())
                };
                match (status, body) {
                    (200..=299, Ok(body)) => serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(id)
                        .map(Outcome::Ok)
                        .unwrap_or_else(|| Outcome::Unknown(format!("{status} without an id"))),
                    (200..=299, Err(e)) => Outcome::Unknown(format!("{status}, body cut: {e}")),
                    (502 | 504, _) => Outcome::Unknown(status.to_string()),
                    (401, _) => {
                        self.renew().await;
                        Outcome::Failed("401".into())
                    }
                    _ => Outcome::Failed(status.to_string()),
                }
            }
            Err(e) if e.is_connect() => Outcome::Failed("connect".into()),
            Err(e) if e.is_timeout() => Outcome::Unknown("timeout".into()),
            Err(_) => Outcome::Unknown("connection".into()),
        }
    }
}

/// Requests made for one fault, shared while the load runs.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<Vec<Record>>>);

impl History {
    pub fn records(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
    }
}

/// A steady load: `rate` requests a second (every fifth a person's task, the rest jobs) until
/// `stop` is set; then waits for the requests in flight.
pub struct Load {
    stop: Arc<tokio::sync::Notify>,
    handle: tokio::task::JoinHandle<()>,
    pub history: History,
}

impl Load {
    pub fn start(client: Client, tag: String, rate: u32) -> Self {
        let history = History::default();
        let stop = Arc::new(tokio::sync::Notify::new());
        let handle = tokio::spawn({
            let history = history.clone();
            let stop = stop.clone();
            async move {
                let in_flight = Arc::new(Semaphore::new(256));
                let mut tasks = tokio::task::JoinSet::new();
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let stopped = stop.notified();
                tokio::pin!(stopped);
                for n in 0u64.. {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => {}
                    }
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        break;
                    };
                    let (client, tag, history) = (client.clone(), tag.clone(), history.clone());
                    tasks.spawn(async move {
                        let record = client.create(&tag, n % 5 != 4).await;
                        history.0.lock().unwrap().push(record);
                        drop(permit);
                    });
                }
                while tasks.join_next().await.is_some() {}
            }
        });
        Self {
            stop,
            handle,
            history,
        }
    }

    /// Stops making requests and waits for those in flight; returns the history.
    pub async fn finish(self) -> Vec<Record> {
        self.stop.notify_one();
        let _ = self.handle.await;
        self.history.records()
    }
}
