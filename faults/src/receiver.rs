//! The external receiver the jobs call: an HTTP server that records every call with its
//! `Idempotency-Key` (the worker sends one per job, the same for every attempt) and the client
//! request it belongs to (`?req=<id>` in the job's URL), and always answers 200.
//!
//! It records calls, not effects: a real receiver would deduplicate by the key; the checker
//! decides which repeated calls are harmless re-runs and which are duplicates.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use uuid::Uuid;

/// One call the receiver answered 200.
#[derive(Clone, Debug)]
pub struct Call {
    pub key: String,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Receiver {
    /// Calls by client request id.
    calls: Arc<Mutex<HashMap<Uuid, Vec<Call>>>>,
    /// Calls without a request id this suite made (none expected).
    strays: Arc<Mutex<Vec<String>>>,
    last_call: Arc<Mutex<Option<Instant>>>,
}

#[derive(serde::Deserialize)]
struct EffectQuery {
    req: Option<Uuid>,
    /// Answer this long after recording the call, so that workers hold running jobs when
    /// they die (a call recorded but never answered is what makes a re-run).
    delay_ms: Option<u64>,
}

async fn effect(
    State(receiver): State<Receiver>,
    Query(query): Query<EffectQuery>,
    headers: HeaderMap,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let at = Instant::now();
    *receiver.last_call.lock().unwrap() = Some(at);
    match query.req {
        Some(req) => receiver
            .calls
            .lock()
            .unwrap()
            .entry(req)
            .or_default()
            .push(Call { key, at }),
        None => receiver.strays.lock().unwrap().push(key),
    }
    if let Some(ms) = query.delay_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    StatusCode::OK
}

impl Receiver {
    /// Serves on a free local port; returns the receiver and its base URL.
    pub async fn start() -> anyhow::Result<(Self, SocketAddr)> {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = Router::new()
            .route("/effect", post(effect))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((receiver, addr))
    }

    /// The calls made for client request `req`.
    pub fn calls(&self, req: &Uuid) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .get(req)
            .cloned()
            .unwrap_or_default()
    }

    /// Every request id with calls.
    pub fn requests(&self) -> Vec<Uuid> {
        self.calls.lock().unwrap().keys().copied().collect()
    }

    pub fn strays(&self) -> usize {
        self.strays.lock().unwrap().len()
    }

    pub fn last_call(&self) -> Option<Instant> {
        *self.last_call.lock().unwrap()
    }
}

/// One webhook delivery attempt the hooks receiver answered.
#[derive(Clone, Debug)]
pub struct HookCall {
    /// The `webhook-id` header: one per delivery, the same on every retry.
    pub id: String,
    pub at: Instant,
    /// What the receiver answered (200, or the status a fault set).
    pub status: u16,
}

/// The webhook endpoint notify-svc delivers to (`POST /hook`, registered by the peer user for
/// `task.assigned`): records each delivery attempt by the task it is about (`data.task_id` of
/// the CloudEvent body) with its `webhook-id`, and answers 200, or the status set by
/// [`Hooks::set_status`] (the `webhook:500` fault).
#[derive(Clone, Default)]
pub struct Hooks {
    calls: Arc<Mutex<HashMap<Uuid, Vec<HookCall>>>>,
    /// Deliveries whose body names no task (none expected).
    strays: Arc<Mutex<usize>>,
    /// 0: answer 200.
    status: Arc<std::sync::atomic::AtomicU16>,
}

async fn hook(
    State(hooks): State<Hooks>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = match hooks.status.load(std::sync::atomic::Ordering::SeqCst) {
        0 => 200,
        s => s,
    };
    let task = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["data"]["task_id"]
                .as_str()
                .and_then(|s| s.parse::<Uuid>().ok())
        });
    match task {
        Some(task) => hooks
            .calls
            .lock()
            .unwrap()
            .entry(task)
            .or_default()
            .push(HookCall {
                id,
                at: Instant::now(),
                status,
            }),
        None => *hooks.strays.lock().unwrap() += 1,
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Hooks {
    /// Serves `POST /hook` on a free local port.
    pub async fn start() -> anyhow::Result<(Self, SocketAddr)> {
        let hooks = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = Router::new()
            .route("/hook", post(hook))
            .with_state(hooks.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((hooks, addr))
    }

    /// Answer every delivery with `status` (200: back to normal).
    pub fn set_status(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// The delivery attempts about task `task`.
    pub fn calls(&self, task: &Uuid) -> Vec<HookCall> {
        self.calls
            .lock()
            .unwrap()
            .get(task)
            .cloned()
            .unwrap_or_default()
    }

    /// Every task with delivery attempts.
    pub fn tasks(&self) -> Vec<Uuid> {
        self.calls.lock().unwrap().keys().copied().collect()
    }

    pub fn strays(&self) -> usize {
        *self.strays.lock().unwrap()
    }
}
