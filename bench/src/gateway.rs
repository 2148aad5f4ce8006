//! `bench gateway`: authenticated requests per second and p50/p99 through the gateway
//! (`GET /api/v1/users/me`: JWT check, Redis session check and rate limit, proxy to user-svc,
//! one primary-key query), next to the same machine's raw axum limit for a handler that only
//! verifies the JWT, with the same load generator in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{http::HeaderMap, routing::get, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use shared::testkit::TestEnv;

use crate::{figures, platform, Figures};

const REQUESTS: usize = 20_000;
pub(crate) const CONCURRENCY: usize = 32;

pub async fn run() -> anyhow::Result<()> {
    let requests = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REQUESTS);
    println!(
        "Taskmesh gateway benchmark: {requests} requests, {CONCURRENCY} concurrent, {} cores",
        crate::cores()
    );
    let raw = raw_axum(requests).await?;
    let env = TestEnv::new();
    let Some(children) = platform::spawn(&env).await? else {
        return Ok(());
    };
    let http = reqwest::Client::new();
    let token = platform::token(&http, "bench-gateway@example.com").await?;
    let url = format!("{}/users/me", platform::API);
    load(&url, &token, 500).await?; // warm-up: connections, caches
    let gateway = load(&url, &token, requests).await?;
    // The same endpoint on user-svc directly, with the assertion the gateway would add (made
    // here per request, as the gateway does: each is good once): the upstream's own ceiling on
    // this machine.
    let me: serde_json::Value = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let trust = shared::internal::Trust::new("api-gateway", env.config.internal.secret.as_ref())?;
    let identity = shared::identity::Identity {
        user_id: me["id"].as_str().unwrap_or_default().parse()?,
        role: shared::identity::Role::Member,
        session_id: None,
        scopes: None,
    };
    let caller = shared::internal::Caller::user("api-gateway", identity, None);
    let path = "/api/v1/users/me";
    let empty = shared::internal::Payload::EMPTY;
    let minted = move || {
        let assertion = trust.mint("user-svc", &reqwest::Method::GET, path, empty, &caller);
        vec![(
            shared::internal::HEADER_ASSERTION.to_string(),
            assertion.to_str().unwrap_or_default().to_string(),
        )]
    };
    let direct = load_each(
        &format!("{}{path}", platform::USER_SVC),
        std::sync::Arc::new(minted),
        requests,
    )
    .await?;
    platform::print_trace_counts().await;
    drop(children);
    println!();
    println!("| path | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| raw axum, handler verifies the EdDSA JWT | {:.0} | {:.2} | {:.2} |",
        raw.rate, raw.p50, raw.p99
    );
    println!(
        "| gateway → user-svc `GET /api/v1/users/me` | {:.0} | {:.2} | {:.2} |",
        gateway.rate, gateway.p50, gateway.p99
    );
    println!(
        "| user-svc directly (no gateway), same endpoint | {:.0} | {:.2} | {:.2} |",
        direct.rate, direct.p50, direct.p99
    );
    println!(
        "gateway path: {:.1}x the raw per-request cost",
        raw.rate / gateway.rate
    );
    Ok(())
}

/// An axum server whose only handler verifies a bearer JWT, on an ephemeral port.
async fn raw_axum(requests: usize) -> anyhow::Result<Figures> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let encoding = EncodingKey::from_ed_pem(pem.as_bytes())?;
    let decoding = Arc::new(DecodingKey::from_ed_components(
        &URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    )?);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "taskmesh", "aud": "taskmesh-api", "sub": uuid::Uuid::now_v7().to_string(),
        "role": "member", "sid": uuid::Uuid::now_v7().to_string(), "iat": now, "exp": now + 900,
    });
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &encoding)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["taskmesh"]);
    validation.set_audience(&["taskmesh-api"]);
    let validation = Arc::new(validation);
    let app = Router::new().route(
        "/me",
        get(move |headers: HeaderMap| {
            let (decoding, validation) = (decoding.clone(), validation.clone());
            async move {
                let token = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                match jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation) {
                    Ok(_) => (axum::http::StatusCode::OK, "{}"),
                    Err(_) => (axum::http::StatusCode::UNAUTHORIZED, "{}"),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/me", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    load(&url, &token, 500).await?;
    let figures = load(&url, &token, requests).await?;
    server.abort();
    Ok(figures)
}

/// `requests` GETs with a bearer token.
pub(crate) async fn load(url: &str, token: &str, requests: usize) -> anyhow::Result<Figures> {
    load_with(
        url,
        &[("authorization", format!("Bearer {token}"))],
        requests,
    )
    .await
}

/// `requests` GETs with `headers` from `CONCURRENCY` workers; every answer must be 200.
pub(crate) async fn load_with(
    url: &str,
    headers: &[(&str, String)],
    requests: usize,
) -> anyhow::Result<Figures> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    load_each(url, std::sync::Arc::new(move || headers.clone()), requests).await
}

/// The headers of one request.
type MakeHeaders = std::sync::Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// [`load_with`] with headers made for each request.
async fn load_each(url: &str, headers: MakeHeaders, requests: usize) -> anyhow::Result<Figures> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let started = Instant::now();
    let per_worker = requests / CONCURRENCY;
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url, headers) = (http.clone(), url.to_string(), headers.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let headers = headers();
                let sent = Instant::now();
                let mut request = http.get(&url);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.send().await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "{url} answered {}",
                    response.status()
                );
                response.bytes().await?;
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed: Duration = started.elapsed();
    Ok(figures(latencies.len(), elapsed, latencies))
}
