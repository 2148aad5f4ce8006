//! The built-in kinds: `noop`, `sleep`, `http` (with an SSRF guard) and `command` (an
//! allow-listed executable, no shell, off unless configured).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use shared::config::WorkersConfig;

use crate::handler::{JobContext, JobError, JobResult, Registry};

/// A registry with every built-in kind this config allows.
pub fn registry(config: &WorkersConfig) -> anyhow::Result<Registry> {
    let mut registry = Registry::default();
    registry.register("noop", |_ctx: JobContext| async { Ok(json!({})) });
    registry.register("sleep", sleep);
    let http = Arc::new(Http::new(config)?);
    registry.register("http", move |ctx: JobContext| {
        let http = http.clone();
        async move { http.run(ctx).await }
    });
    if !config.commands.is_empty() {
        let commands = Arc::new(Commands {
            allowed: config.commands.clone(),
            max_output: config.http_max_response_bytes,
        });
        registry.register("command", move |ctx: JobContext| {
            let commands = commands.clone();
            async move { commands.run(ctx).await }
        });
    }
    Ok(registry)
}

fn payload<T: serde::de::DeserializeOwned>(ctx: &JobContext) -> Result<T, JobError> {
    serde_json::from_value(ctx.payload.clone())
        .map_err(|e| JobError::fatal(format!("invalid {} payload: {e}", ctx.kind)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepPayload {
    /// How long, at most one day.
    ms: u64,
}

/// Waits `ms`, reporting progress every tenth; stops when cancelled.
async fn sleep(ctx: JobContext) -> JobResult {
    let SleepPayload { ms } = payload(&ctx)?;
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

/// Which otherwise refused addresses the `http` kind may call.
#[derive(Debug, Clone, Default)]
struct AllowList {
    hosts: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl AllowList {
    fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut list = AllowList::default();
        for entry in entries {
            let entry = entry.trim();
            if let Some((ip, bits)) = entry.split_once('/') {
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| anyhow::anyhow!("workers.http_allow: bad CIDR {entry:?}"))?;
                let bits: u8 = bits
                    .parse()
                    .map_err(|_| anyhow::anyhow!("workers.http_allow: bad CIDR {entry:?}"))?;
                list.nets.push((ip, bits));
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                list.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                list.hosts.push(entry.to_ascii_lowercase());
            }
        }
        Ok(list)
    }

    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        self.hosts.iter().any(|h| h == &host.to_ascii_lowercase())
            || self.nets.iter().any(|(net, bits)| in_net(ip, *net, *bits))
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let bits = u32::from(bits.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let bits = u32::from(bits.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Addresses an outbound call must not reach unless allow-listed: loopback, private,
/// link-local (cloud metadata), carrier-grade NAT, unspecified, broadcast, multicast, and the
/// IPv6 equivalents (also IPv4 mapped into IPv6).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The `http` kind: one request, its response recorded. Names are resolved here and every
/// address is checked before connecting; the connection goes to a checked address (no DNS
/// rebinding), and redirects are not followed (a redirect could point inside).
struct Http {
    allow: AllowList,
    max_body: usize,
    client: reqwest::Client,
}

impl Http {
    fn new(config: &WorkersConfig) -> anyhow::Result<Self> {
        Ok(Self {
            allow: AllowList::parse(&config.http_allow)?,
            max_body: config.http_max_response_bytes,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// The addresses of `url`'s host that may be called; a refusal is fatal.
    async fn check(&self, url: &url::Url) -> Result<Vec<SocketAddr>, JobError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(JobError::fatal("http: only http and https URLs"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| JobError::fatal("http: the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| JobError::retry(format!("http: cannot resolve {host}: {e}")))?
                .collect(),
        };
        let refused: Vec<_> = addrs
            .iter()
            .filter(|a| is_internal(a.ip()) && !self.allow.allows(&host, a.ip()))
            .collect();
        if addrs.is_empty() || !refused.is_empty() {
            return Err(JobError::fatal(format!(
                "http: {host} resolves to an internal address ({}); allow it in workers.http_allow",
                refused
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(addrs)
    }

    async fn run(&self, ctx: JobContext) -> JobResult {
        let request: HttpPayload = payload(&ctx)?;
        let url = url::Url::parse(&request.url)
            .map_err(|e| JobError::fatal(format!("http: bad url: {e}")))?;
        let addrs = self.check(&url).await?;
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| JobError::fatal("http: bad method"))?;
        // Connect to the checked address, whatever DNS says by the time we connect.
        let client = match url.host_str().filter(|h| h.parse::<IpAddr>().is_err()) {
            Some(host) => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .resolve_to_addrs(host, &addrs)
                .build()
                .map_err(|e| JobError::retry(format!("http: {e}")))?,
            None => self.client.clone(),
        };
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandPayload {
    program: String,
    #[serde(default)]
    args: Vec<String>,
}

/// The `command` kind: runs an allow-listed executable with arguments, no shell, in a clean
/// environment (`PATH` and the job's `TASKMESH_*` variables only). Killed when the job stops.
struct Commands {
    allowed: Vec<String>,
    max_output: usize,
}

impl Commands {
    async fn run(&self, ctx: JobContext) -> JobResult {
        let request: CommandPayload = payload(&ctx)?;
        if request.args.len() > 100 || request.args.iter().any(|a| a.len() > 4096) {
            return Err(JobError::fatal(
                "command: at most 100 arguments of 4096 bytes",
            ));
        }
        let program = self
            .allowed
            .iter()
            .find(|allowed| {
                **allowed == request.program
                    || std::path::Path::new(allowed.as_str())
                        .file_name()
                        .is_some_and(|name| name == request.program.as_str())
            })
            .ok_or_else(|| {
                JobError::fatal(format!(
                    "command: {:?} is not in workers.commands",
                    request.program
                ))
            })?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(&request.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TASKMESH_TASK_ID", ctx.task_id.to_string())
            .env("TASKMESH_ATTEMPT", ctx.attempt.to_string())
            .env("TASKMESH_IDEMPOTENCY_KEY", &ctx.idempotency_key)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::retry("stopped")),
            output = command.output() => output
                .map_err(|e| JobError::fatal(format!("command: cannot run {program}: {e}")))?,
        };
        let cut = |bytes: &[u8]| {
            String::from_utf8_lossy(&bytes[..bytes.len().min(self.max_output)]).into_owned()
        };
        let (stdout, stderr) = (cut(&output.stdout), cut(&output.stderr));
        if !output.status.success() {
            return Err(JobError::retry(format!(
                "command: {program} exited with {}: {}",
                output.status,
                stderr
                    .chars()
                    .rev()
                    .take(300)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            )));
        }
        Ok(json!({ "exit_code": output.status.code(), "stdout": stdout, "stderr": stderr }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_allow_list_takes_hosts_ips_and_ranges() {
        let list =
            AllowList::parse(&["localhost".into(), "10.0.0.0/8".into(), "::1".into()]).unwrap();
        assert!(list.allows("LOCALHOST", "127.0.0.1".parse().unwrap()));
        assert!(list.allows("x", "10.9.8.7".parse().unwrap()));
        assert!(list.allows("x", "::1".parse().unwrap()));
        assert!(!list.allows("x", "127.0.0.1".parse().unwrap()));
        assert!(AllowList::parse(&["10.0.0.0/x".into()]).is_err());
    }
}
