//! The built-in kinds: `noop`, `echo`, `sleep`, `http` (with an SSRF guard) and `command` (one of the
//! operator's command templates, no shell, no network, off unless configured; in
//! [`crate::command`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use shared::config::WorkersConfig;
use shared::outbound::{Guard, Refusal};

use crate::handler::{JobContext, JobError, JobResult, Registry};

/// A registry with every built-in kind this config allows.
pub fn registry(config: &WorkersConfig) -> anyhow::Result<Registry> {
    let mut registry = Registry::default();
    registry.register("noop", |_ctx: JobContext| async { Ok(json!({})) });
    registry.register("echo", |ctx: JobContext| async move { Ok(echo(ctx)) });
    registry.register("sleep", sleep);
    let http = Arc::new(Http::new(config)?);
    registry.register("http", move |ctx: JobContext| {
        let http = http.clone();
        async move { http.run(ctx).await }
    });
    if !config.commands.is_empty() {
        crate::command::shield_worker();
        let commands = Arc::new(crate::command::Commands {
            templates: config.commands.clone(),
            network: config.command_network,
            max_output: config.http_max_response_bytes,
        });
        registry.register("command", move |ctx: JobContext| {
            let commands = commands.clone();
            async move { commands.run(ctx).await }
        });
    }
    Ok(registry)
}

/// `echo`: what the run was given, `{"payload", "inputs"}` (`inputs` `{}` for a job on its own)
/// and `item` for a map step's run. For tests and demonstrations of workflows.
fn echo(ctx: JobContext) -> Value {
    let mut result = json!({
        "payload": ctx.payload,
        "inputs": ctx.inputs.unwrap_or_else(|| json!({})),
    });
    if let Some(item) = ctx.item {
        result["item"] = item;
    }
    result
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepPayload {
    /// How long, at most one day.
    ms: u64,
}

/// Waits `ms`, reporting progress every tenth; stops when cancelled.
async fn sleep(ctx: JobContext) -> JobResult {
    let SleepPayload { ms } = ctx.payload_as()?;
    if ms > 86_400_000 {
        return Err(JobError::fatal("sleep ms must be at most 86400000"));
    }
    let step = Duration::from_millis(ms / 10);
    let started = std::time::Instant::now();
    for tenth in 1..=10u32 {
        let wait = if tenth == 10 {
            Duration::from_millis(ms).saturating_sub(started.elapsed())
        } else {
            step
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::retry("stopped")),
            _ = tokio::time::sleep(wait) => {}
        }
        if ms >= 1000 {
            ctx.progress(Some(f64::from(tenth) * 10.0), None);
        }
    }
    Ok(json!({ "slept_ms": ms }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpPayload {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// Sent as JSON.
    body: Option<Value>,
}

fn get() -> String {
    "GET".into()
}

/// The `http` kind: one request, its response recorded. Names are resolved here and every
/// address is checked before connecting; the connection goes to a checked address (no DNS
/// rebinding), and redirects are not followed (a redirect could point inside).
struct Http {
    guard: Guard,
    max_body: usize,
}

impl Http {
    fn new(config: &WorkersConfig) -> anyhow::Result<Self> {
        Ok(Self {
            guard: Guard::new("workers.http_allow", &config.http_allow)?,
            max_body: config.http_max_response_bytes,
        })
    }

    /// The addresses of `url`'s host that may be called; a refusal is fatal.
    async fn check(&self, url: &url::Url) -> Result<Vec<SocketAddr>, JobError> {
        self.guard
            .check(url)
            .await
            .map_err(|refusal| match refusal {
                Refusal::Forbidden(why) => JobError::fatal(format!("http: {why}")),
                Refusal::Unresolved(why) => JobError::retry(format!("http: {why}")),
            })
    }

    async fn run(&self, ctx: JobContext) -> JobResult {
        let request: HttpPayload = ctx.payload_as()?;
        for name in request.headers.keys() {
            if let Some(why) = shared::outbound::refused_header(name) {
                return Err(JobError::fatal(format!(
                    "http: header {name:?} refused: {why}"
                )));
            }
        }
        let url = url::Url::parse(&request.url)
            .map_err(|e| JobError::fatal(format!("http: bad url: {e}")))?;
        let addrs = self.check(&url).await?;
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| JobError::fatal("http: bad method"))?;
        // Connect to the checked address, whatever DNS says by the time we connect.
        // The job's own timeout bounds the request; this is only a backstop.
        let client = self
            .guard
            .client(&url, &addrs, Duration::from_secs(24 * 3600))
            .map_err(|e| JobError::retry(format!("http: {e}")))?;
        let mut builder = client
            .request(method, url)
            .header("idempotency-key", &ctx.idempotency_key)
            .header("x-taskmesh-attempt", ctx.attempt.to_string());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| JobError::retry(format!("http: {e}")))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        let mut stream = response;
        while let Some(chunk) = stream
            .chunk()
            .await
            .map_err(|e| JobError::retry(format!("http: reading the body: {e}")))?
        {
            let room = self.max_body.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let body_value =
            serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| Value::String(text.clone()));
        if !status.is_success() {
            let message = format!(
                "http: {} answered {status}: {}",
                ctx.payload["url"].as_str().unwrap_or(""),
                text.chars().take(300).collect::<String>()
            );
            // Server trouble and throttling may pass; other answers will not change.
            let transient = status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT;
            return Err(if transient {
                JobError::retry(message)
            } else {
                JobError::fatal(message)
            });
        }
        Ok(json!({
            "status": status.as_u16(),
            "content_type": content_type,
            "body": body_value,
        }))
    }
}
