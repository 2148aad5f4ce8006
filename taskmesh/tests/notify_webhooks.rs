//! Outgoing webhooks through the gateway: endpoints and their validation, ownership, signed
//! deliveries checked by the reference Standard Webhooks library, retries, 410 Gone and secret
//! rotation. The receiver is an axum server inside the test that records every request and
//! answers from a script.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, http::Uri, Router};
use base64::{engine::general_purpose::STANDARD, Engine};
use common::{App, Reply, WAIT};
use reqwest::Method;
use serde_json::{json, Value};
use shared::testkit::eventually;

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    method: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

#[derive(Default)]
struct Inbox {
    requests: Vec<Recorded>,
    /// Per path, the statuses to answer in turn; 200 when none is left. [`HANG`] holds the
    /// answer (then 200) until the test calls [`Receiver::release`].
    script: HashMap<String, VecDeque<u16>>,
}

/// A script entry: answer only once released.
const HANG: u16 = 0;
/// A script entry: a slow endpoint, 200 after [`SLOW_ANSWER`].
const SLOW: u16 = 1;
const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Clone)]
struct Shared {
    inbox: Arc<Mutex<Inbox>>,
    gate: Arc<tokio::sync::Semaphore>,
    flight: Arc<Flight>,
}

/// Requests being answered now, and the most there were at once.
#[derive(Default)]
struct Flight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// One request in flight, until dropped.
struct Aloft(Arc<Flight>);

impl Aloft {
    fn take_off(flight: &Arc<Flight>) -> Self {
        let now = flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        flight.most.fetch_max(now, Ordering::SeqCst);
        Aloft(flight.clone())
    }
}

impl Drop for Aloft {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The webhook receiver: records every request, answers per path from a script.
struct Receiver {
    base: String,
    inbox: Arc<Mutex<Inbox>>,
    gate: Arc<tokio::sync::Semaphore>,
    flight: Arc<Flight>,
}

impl Receiver {
    async fn start() -> Self {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let flight = Arc::new(Flight::default());
        let app = Router::new().fallback(receive).with_state(Shared {
            inbox: inbox.clone(),
            gate: gate.clone(),
            flight: flight.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            base,
            inbox,
            gate,
            flight,
        }
    }

    /// The most requests the receiver was answering at once.
    fn most_in_flight(&self) -> usize {
        self.flight.most.load(Ordering::SeqCst)
    }

    /// Lets every held request answer.
    fn release(&self) {
        self.gate.add_permits(1_000);
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answers the next requests to `path` with `statuses`, then 200.
    fn script(&self, path: &str, statuses: &[u16]) {
        let mut inbox = self.inbox.lock().unwrap();
        inbox
            .script
            .insert(path.into(), statuses.iter().copied().collect());
    }

    fn requests(&self, path: &str) -> Vec<Recorded> {
        let inbox = self.inbox.lock().unwrap();
        inbox
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits for at least `n` requests to `path`.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Recorded> {
        eventually(&format!("{n} requests to {path}"), WAIT, || async {
            let got = self.requests(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn receive(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let _aloft = Aloft::take_off(&shared.flight);
    let status = record(&shared.inbox, method, uri, headers, body);
    match status {
        HANG => {
            shared.gate.acquire().await.unwrap().forget();
            StatusCode::OK.into_response()
        }
        SLOW => {
            tokio::time::sleep(SLOW_ANSWER).await;
            StatusCode::OK.into_response()
        }
        // Busy: come back in RETRY_AFTER seconds.
        429 | 503 => {
            let status = StatusCode::from_u16(status).unwrap();
            (status, [("retry-after", RETRY_AFTER.to_string())], "busy").into_response()
        }
        _ => StatusCode::from_u16(status).unwrap().into_response(),
    }
}

/// The `Retry-After` of the receiver's 429 and 503 answers, in seconds.
const RETRY_AFTER: i64 = 120;

/// Records the request; the scripted answer.
fn record(inbox: &Mutex<Inbox>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> u16 {
    let mut inbox = inbox.lock().unwrap();
    let path = uri.path().to_string();
    let status = inbox
        .script
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(200);
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    inbox.requests.push(Recorded {
        path,
        method: method.to_string(),
        headers,
        body: body.to_vec(),
    });
    status
}

/// Verifies `requests` with the reference `standardwebhooks` library
/// (`tests/notify/webhook_verify.py`), trying each of `secrets`; its JSON report.
fn verify(requests: &[Recorded], secrets: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!("taskmesh-webhooks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("requests.jsonl");
    let lines: Vec<String> = requests
        .iter()
        .enumerate()
        .map(|(n, r)| {
            json!({"n": n, "path": r.path, "method": r.method, "headers": r.headers,
                   "body_b64": STANDARD.encode(&r.body)})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/notify/webhook_verify.py"
    );
    let mut command = std::process::Command::new(common::venv_python());
    command.arg(script).arg("--in").arg(&file);
    for secret in secrets {
        command.args(["--secret", secret]);
    }
    let output = command.output().expect("webhook_verify.py runs");
    assert!(output.status.success(), "{output:?}");
    std::fs::remove_dir_all(&dir).ok();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A test app whose webhooks may call the local receiver and retry after a second.
async fn app() -> App {
    App::start_with(|c| {
        c.webhooks.allow = vec!["127.0.0.1".into()];
        c.webhooks.schedule_secs = vec![0, 1, 1, 1];
    })
    .await
}

async fn user_id(app: &App, token: &str) -> String {
    let (status, me) = app.get("/api/v1/users/me", Some(token)).await;
    assert_eq!(status, 200, "{me}");
    me["id"].as_str().unwrap().to_string()
}

async fn call(app: &App, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    app.send(method, path, Some(token), body).await
}

async fn create_endpoint(app: &App, token: &str, url: &str, types: &[&str]) -> Value {
    let reply = call(
        app,
        Method::POST,
        "/api/v1/webhooks",
        token,
        Some(json!({"url": url, "event_types": types})),
    )
    .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body
}

async fn endpoint_rows(app: &App) -> i64 {
    let pool = app.db(&app.env.config.notify.database).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Ada assigns Bob a new task (once task-svc knows Bob); the task's id.
async fn assign_task_to(app: &App, ada: &str, bob_id: &str, title: &str) -> String {
    let (status, task) = app
        .post("/api/v1/tasks", Some(ada), json!({"title": title}))
        .await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tasks/{id}");
    eventually("bob to be assignable", WAIT, || async {
        let reply = call(
            app,
            Method::PATCH,
            &path,
            ada,
            Some(json!({"assignee_id": bob_id})),
        )
        .await;
        (reply.status == 200).then_some(())
    })
    .await;
    id
}

async fn deliveries(app: &App, token: &str, endpoint_id: &str) -> Vec<Value> {
    let reply = call(
        app,
        Method::GET,
        &format!("/api/v1/webhooks/{endpoint_id}/deliveries"),
        token,
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_shows_only_at_creation_and_invalid_endpoints_write_nothing() {
    let app = app().await;
    let ada = app.sign_up("ada@example.com").await;
    let created = create_endpoint(&app, &ada, "http://127.0.0.1:9/hook", &["task.assigned"]).await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(STANDARD.decode(&secret[6..]).unwrap().len() >= 24);
    assert_eq!(created["event_types"], json!(["task.assigned"]));
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();

    let list = call(&app, Method::GET, "/api/v1/webhooks", &ada, None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let read = call(
        &app,
        Method::GET,
        &format!("/api/v1/webhooks/{id}"),
        &ada,
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    for answer in [&list.body.to_string(), &read.body.to_string()] {
        assert!(!answer.contains("whsec_"), "{answer}");
    }

    let refused = [
        (
            json!({"url": "ftp://example.com/hook", "event_types": ["task.assigned"]}),
            "invalid_url",
        ),
        (
            json!({"url": "not a url", "event_types": ["task.assigned"]}),
            "invalid_url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "event_types": ["task.exploded"]}),
            "unknown_event_type",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "event_types": []}),
            "invalid_event_types",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "event_types": ["task.assigned"], "description": "x".repeat(501)}),
            "invalid_description",
        ),
        (
            json!({"url": format!("http://127.0.0.1:9/{}", "a".repeat(2000)), "event_types": ["task.assigned"]}),
            "invalid_url",
        ),
    ];
    for (body, code) in refused {
        let reply = call(
            &app,
            Method::POST,
            "/api/v1/webhooks",
            &ada,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, code),
            "{body}: {:?}",
            reply.body
        );
        if code == "unknown_event_type" {
            assert!(
                reply.text("detail").contains("task.exploded"),
                "{:?}",
                reply.body
            );
        }
    }
    let bad_patch = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/webhooks/{id}"),
        &ada,
        Some(json!({"url": "ftp://example.com/"})),
    )
    .await;
    assert_eq!((bad_patch.status, bad_patch.code()), (422, "invalid_url"));
    assert_eq!(
        endpoint_rows(&app).await,
        1,
        "refused requests wrote nothing"
    );

    let rotated = call(
        &app,
        Method::POST,
        &format!("/api/v1/webhooks/{id}/rotate-secret"),
        &ada,
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new_secret = rotated.text("secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(!rotated.body["previous_secret_until"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_refused_unless_allowed() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/",
    ] {
        let reply = call(
            &app,
            Method::POST,
            "/api/v1/webhooks",
            &ada,
            Some(json!({"url": url, "event_types": ["task.assigned"]})),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "forbidden_url"),
            "{url}: {:?}",
            reply.body
        );
        assert!(
            reply.text("detail").contains("webhooks.allow"),
            "{:?}",
            reply.body
        );
    }
    assert_eq!(endpoint_rows(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_endpoint_is_not_found() {
    let app = app().await;
    let ada = app.sign_up("ada@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let created = create_endpoint(&app, &ada, "http://127.0.0.1:9/hook", &["task.assigned"]).await;
    let id = created["id"].as_str().unwrap();
    let delivery = uuid::Uuid::now_v7();
    let attempts = [
        (Method::GET, format!("/api/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{id}"),
            Some(json!({"description": "mine"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/webhooks/{id}"),
            Some(json!({"url": "ftp://x/"})),
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/rotate-secret"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
            None,
        ),
        (Method::POST, format!("/api/v1/webhooks/{id}/test"), None),
        (Method::DELETE, format!("/api/v1/webhooks/{id}"), None),
    ];
    for (method, path, body) in attempts {
        let reply = call(&app, method.clone(), &path, &eve, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found"),
            "{method} {path}"
        );
    }
    let list = call(&app, Method::GET, "/api/v1/webhooks", &eve, None).await;
    assert_eq!(list.body["items"], json!([]));
    let still = call(
        &app,
        Method::GET,
        &format!("/api/v1/webhooks/{id}"),
        &ada,
        None,
    )
    .await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body["description"], "");
    // Nothing was queued for Eve's tries; a disabled endpoint takes no test.
    assert!(deliveries(&app, &ada, id).await.is_empty());
    let path = format!("/api/v1/webhooks/{id}");
    let off = Some(json!({"enabled": false}));
    assert_eq!(
        call(&app, Method::PATCH, &path, &ada, off).await.status,
        200
    );
    let test = call(&app, Method::POST, &format!("{path}/test"), &ada, None).await;
    assert_eq!((test.status, test.code()), (409, "endpoint_disabled"));
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/webhooks/{id}"),
        &ada,
        None,
    )
    .await;
    assert_eq!(deleted.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_reaches_the_assignees_endpoint_signed_per_standard_webhooks() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    let endpoint = create_endpoint(&app, &bob, &receiver.url("/bob"), &["task.assigned"]).await;
    let secret = endpoint["secret"].as_str().unwrap();

    let task_id = assign_task_to(&app, &ada, &bob_id, "Review the webhook docs").await;

    let got = receiver.wait_for("/bob", 1).await;
    let request = &got[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["user-agent"], "Taskmesh-Webhooks/1");
    let event: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(event["type"], "task.assigned");
    assert_eq!(event["data"]["task_id"], task_id.as_str());
    assert_eq!(event["data"]["assignee_id"], bob_id.as_str());
    let report = verify(&got, &[secret]);
    assert_eq!(report["checked"], got.len(), "{report}");
    assert_eq!(report["verified"], got.len(), "{report}");
    assert_eq!(report["types"][0], "task.assigned");

    let endpoint_id = endpoint["id"].as_str().unwrap();
    let listed = eventually("the delivery to be recorded delivered", WAIT, || async {
        let items = deliveries(&app, &bob, endpoint_id).await;
        (items.first().is_some_and(|d| d["state"] == "delivered")).then_some(items)
    })
    .await;
    assert_eq!(
        listed[0]["message_id"],
        request.headers["webhook-id"].as_str()
    );
    assert_eq!(listed[0]["event_id"], event["id"]);
    assert_eq!(listed[0]["attempt_log"][0]["status"], 200);
}

/// Bob's endpoint for `task.assigned` at `path` of a fresh receiver answering as `script` says
/// (then 200), after Ada assigned him a task titled `title`.
struct Scene {
    receiver: Receiver,
    bob: String,
    endpoint: Value,
    endpoint_id: String,
}

async fn bobs_endpoint_after_an_assignment(
    app: &App,
    path: &str,
    script: &[u16],
    title: &str,
) -> Scene {
    let receiver = Receiver::start().await;
    receiver.script(path, script);
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up_verified("bob@example.com").await;
    let bob_id = user_id(app, &bob).await;
    let endpoint = create_endpoint(app, &bob, &receiver.url(path), &["task.assigned"]).await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    assign_task_to(app, &ada, &bob_id, title).await;
    Scene {
        receiver,
        bob,
        endpoint,
        endpoint_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_and_redelivery_keeps_the_webhook_id() {
    let app = app().await;
    let Scene {
        receiver,
        bob,
        endpoint,
        endpoint_id,
    } = bobs_endpoint_after_an_assignment(&app, "/flaky", &[500], "Flaky").await;
    let endpoint_id = endpoint_id.as_str();

    let delivery = eventually("the delivery to succeed on its retry", WAIT, || async {
        let items = deliveries(&app, &bob, endpoint_id).await;
        items.into_iter().find(|d| d["state"] == "delivered")
    })
    .await;
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    let log = delivery["attempt_log"].as_array().unwrap();
    let statuses: Vec<&Value> = log.iter().map(|a| &a["status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(200)], "{delivery}");
    assert!(log.iter().all(|a| a["latency_ms"].as_i64().unwrap() >= 0));
    let got = receiver.requests("/flaky");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(got[0].body, got[1].body);
    let report = verify(&got, &[endpoint["secret"].as_str().unwrap()]);
    assert_eq!(report["verified"], 2, "{report}");

    let id = delivery["id"].as_str().unwrap();
    let redeliver = call(
        &app,
        Method::POST,
        &format!("/api/v1/webhooks/{endpoint_id}/deliveries/{id}/redeliver"),
        &bob,
        None,
    )
    .await;
    assert_eq!(redeliver.status, 202, "{:?}", redeliver.body);
    let got = receiver.wait_for("/flaky", 3).await;
    assert_eq!(got[2].headers["webhook-id"], got[0].headers["webhook-id"]);
    assert_eq!(got[2].body, got[0].body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_endpoints_retry_after_is_obeyed() {
    let app = app().await;
    let Scene {
        receiver,
        bob,
        endpoint_id,
        ..
    } = bobs_endpoint_after_an_assignment(&app, "/busy", &[503], "Busy").await;
    let endpoint_id = endpoint_id.as_str();

    let delivery = eventually("the first attempt to be recorded", WAIT, || async {
        let items = deliveries(&app, &bob, endpoint_id).await;
        items.into_iter().find(|d| d["attempts"] == 1)
    })
    .await;
    assert_eq!(delivery["state"], "pending");
    assert_eq!(delivery["last_status"], 503);
    // The receiver is on 127.0.0.1, let in by the allow-list: its answer is not kept, only how
    // it answered (an endpoint inside the network is someone else's service).
    assert_eq!(delivery["attempt_log"][0]["status"], 503);
    assert!(
        delivery["attempt_log"][0]["response_excerpt"].is_null(),
        "{delivery}"
    );
    let at = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let wait = at(&delivery["next_attempt_at"]) - at(&delivery["attempt_log"][0]["at"]);
    // The schedule says 1 s; the receiver asked for RETRY_AFTER.
    assert!(wait.num_seconds() >= RETRY_AFTER - 1, "{delivery}");
    assert_eq!(receiver.requests("/busy").len(), 1);
}

/// Bob's endpoint answering as `script` says, after Ada assigns him a task: waits until it is
/// disabled (its reason containing `reason`) and he is told; returns the endpoint id and the
/// notification.
async fn disabled_after_assignment(
    app: &App,
    script: &[u16],
    reason: &str,
) -> (String, String, Value) {
    let Scene {
        bob, endpoint_id, ..
    } = bobs_endpoint_after_an_assignment(app, "/endpoint", script, "Unreachable").await;

    let path = format!("/api/v1/webhooks/{endpoint_id}");
    let disabled = eventually("the endpoint to be disabled", WAIT, || async {
        let reply = call(app, Method::GET, &path, &bob, None).await;
        (reply.body["enabled"] == false).then_some(reply.body)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains(reason),
        "{disabled}"
    );
    let note = eventually("bob to be told", WAIT, || async {
        let items = app.notifications(&bob).await;
        items.into_iter().find(|n| n["kind"] == "webhook.disabled")
    })
    .await;
    assert_eq!(note["subject"], endpoint_id.as_str());
    assert!(!note.to_string().contains("whsec_"));
    (endpoint_id, bob, note)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint_and_tells_its_owner() {
    let app = app().await;
    let (endpoint_id, bob, _) = disabled_after_assignment(&app, &[410], "410").await;
    let path = format!("/api/v1/webhooks/{endpoint_id}");
    let items = deliveries(&app, &bob, &endpoint_id).await;
    assert_eq!(items[0]["state"], "failed");
    assert_eq!(items[0]["last_status"], 410);

    // A disabled endpoint gets nothing new; enabling it again resets its failure clock.
    let enabled = call(
        &app,
        Method::PATCH,
        &path,
        &bob,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(enabled.status, 200);
    assert_eq!(enabled.body["enabled"], true);
    assert!(enabled.body["disabled_reason"].is_null());
    assert!(enabled.body["failing_since"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_past_the_limit_is_disabled_and_its_owner_told() {
    let app = App::start_with(|c| {
        c.webhooks.allow = vec!["127.0.0.1".into()];
        c.webhooks.schedule_secs = vec![0, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        c.webhooks.disable_after_secs = 2;
    })
    .await;
    let (endpoint_id, _, note) =
        disabled_after_assignment(&app, &[500; 30], "every delivery failed").await;
    let path = format!("/api/v1/webhooks/{endpoint_id}");
    assert!(note["link"].as_str().unwrap().ends_with(&path), "{note}");
    // Told by mail too (on by default for this kind): the mail is queued for him.
    let notify = app.db(&app.env.config.notify.database).await;
    let mails: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE channel = 'email' AND kind = 'webhook.disabled'",
    )
    .fetch_one(&notify)
    .await
    .unwrap();
    notify.close().await;
    assert_eq!(mails, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_creation_returns_its_secret_and_redis_never_holds_it_readable() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let bob = app.sign_up("bob@example.com").await;
    let create = || {
        app.http
            .post(format!("{}/api/v1/webhooks", app.api))
            .bearer_auth(&bob)
            .header("idempotency-key", "hook-1")
            .json(&json!({"url": receiver.url("/kept"), "event_types": ["task.assigned"]}))
    };
    let first = Reply::read(create().send().await.unwrap()).await;
    let again = Reply::read(create().send().await.unwrap()).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let secret = first.text("secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        again.text("secret"),
        secret,
        "the retry returns the same endpoint"
    );
    assert_eq!(endpoint_rows(&app).await, 1);

    // What the cache keeps is sealed: neither the secret nor the endpoint's id is in it.
    let entries = app.idempotency_entries().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let value = &entries[0];
    let entry: Value = serde_json::from_str(value).unwrap();
    let body = STANDARD.decode(entry["body"].as_str().unwrap()).unwrap();
    let kept = String::from_utf8_lossy(&body);
    assert!(
        !value.contains("whsec_") && !kept.contains("whsec_"),
        "{kept}"
    );
    assert!(!kept.contains(first.text("id").as_str()), "{kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_services_keep_secret_is_sealed_in_their_databases() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let bob = app.sign_up("bob@example.com").await;
    let endpoint = create_endpoint(&app, &bob, &receiver.url("/sealed"), &["task.assigned"]).await;
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    let rotated = call(
        &app,
        Method::POST,
        &format!(
            "/api/v1/webhooks/{}/rotate-secret",
            endpoint["id"].as_str().unwrap()
        ),
        &bob,
        None,
    )
    .await;
    assert_eq!(rotated.status, 200);
    let kept_in = |database: String, query: &'static str| {
        let app = &app;
        async move {
            let pool = app.db(&database).await;
            let values: Vec<Vec<u8>> = sqlx::query_scalar(query).fetch_all(&pool).await.unwrap();
            pool.close().await;
            values
                .into_iter()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .collect::<Vec<_>>()
        }
    };
    let notify = app.env.config.notify.database.clone();
    let mut kept = kept_in(
        notify.clone(),
        "SELECT convert_to(secret, 'UTF8') FROM webhook_endpoints
         UNION ALL SELECT convert_to(previous_secret, 'UTF8') FROM webhook_endpoints",
    )
    .await;
    assert_eq!(kept.len(), 2, "the secret and the one before the rotation");
    let keys = kept_in(
        app.env.config.user.database.clone(),
        "SELECT convert_to(private_pem, 'UTF8') FROM signing_keys",
    )
    .await;
    assert!(!keys.is_empty());
    kept.extend(keys);
    kept.extend(kept_in(notify, "SELECT value FROM secrets").await);
    kept.extend(
        kept_in(
            app.env.config.media.database.clone(),
            "SELECT value FROM secrets",
        )
        .await,
    );
    for value in &kept {
        assert!(value.starts_with("tmseal1."), "kept in the clear: {value}");
        assert!(
            !value.contains("whsec_") && !value.contains("PRIVATE KEY"),
            "{value}"
        );
        let decoded: Vec<String> = value
            .split('.')
            .filter_map(|part| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .ok()
            })
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect();
        assert!(decoded
            .iter()
            .all(|d| !d.contains(secret.trim_start_matches("whsec_"))));
    }
    // Sealed, they still sign: during_a_rotation_both_secrets_verify delivers with both.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_verify() {
    let app = app().await;
    let receiver = Receiver::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    let endpoint =
        create_endpoint(&app, &bob, &receiver.url("/rotating"), &["task.assigned"]).await;
    let old = endpoint["secret"].as_str().unwrap().to_string();
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let rotated = call(
        &app,
        Method::POST,
        &format!("/api/v1/webhooks/{endpoint_id}/rotate-secret"),
        &bob,
        None,
    )
    .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.text("secret");

    assign_task_to(&app, &ada, &bob_id, "Rotate").await;

    let got = receiver.wait_for("/rotating", 1).await;
    let signatures = &got[0].headers["webhook-signature"];
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    let report = verify(&got, &[&old, &new]);
    assert_eq!(report["verified"], got.len(), "{report}");
    assert_eq!(
        report["per_secret"],
        json!([got.len(), got.len()]),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_hold_up_another() {
    let app = App::start_with(|c| {
        c.webhooks.allow = vec!["127.0.0.1".into()];
        c.webhooks.schedule_secs = vec![0, 1, 1, 1];
        // One delivery in flight per endpoint, and no timeout before the test releases it.
        c.webhooks.per_endpoint = 1;
        c.webhooks.timeout_secs = 300;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script("/slow", &[HANG, HANG]);
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    create_endpoint(&app, &bob, &receiver.url("/slow"), &["task.assigned"]).await;
    create_endpoint(&app, &bob, &receiver.url("/fast"), &["task.assigned"]).await;

    assign_task_to(&app, &ada, &bob_id, "One").await;
    assign_task_to(&app, &ada, &bob_id, "Two").await;

    receiver.wait_for("/fast", 2).await;
    receiver.wait_for("/slow", 1).await;
    assert_eq!(
        receiver.requests("/slow").len(),
        1,
        "the second delivery to /slow waits while the first is in flight"
    );
    receiver.release();
    let slow = receiver.wait_for("/slow", 2).await;
    assert_ne!(slow[0].headers["webhook-id"], slow[1].headers["webhook-id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_out_once_each_within_the_endpoints_bound() {
    const BACKLOG: usize = 16;
    let app = App::start_with(|c| {
        c.webhooks.allow = vec!["127.0.0.1".into()];
        c.webhooks.per_endpoint = 2;
        c.webhooks.timeout_secs = 300;
    })
    .await;
    let receiver = Receiver::start().await;
    // The first two hang, so the rest queue up behind them; then each answers slowly.
    let mut script = vec![HANG, HANG];
    script.resize(BACKLOG, SLOW);
    receiver.script("/hook", &script);
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    let endpoint = create_endpoint(&app, &bob, &receiver.url("/hook"), &["task.assigned"]).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    for n in 0..BACKLOG {
        assign_task_to(&app, &ada, &bob_id, &format!("Task {n}")).await;
    }
    eventually("the backlog queued", WAIT, || async {
        (deliveries(&app, &bob, endpoint_id).await.len() == BACKLOG).then_some(())
    })
    .await;
    receiver.wait_for("/hook", 2).await;
    assert_eq!(
        receiver.requests("/hook").len(),
        2,
        "two in flight, hanging"
    );

    receiver.release();
    eventually("every delivery delivered", WAIT, || async {
        let all = deliveries(&app, &bob, endpoint_id).await;
        all.iter()
            .all(|d| d["state"] == "delivered" && d["attempts"] == 1)
            .then_some(())
    })
    .await;
    let got = receiver.requests("/hook");
    let ids: std::collections::HashSet<_> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!((got.len(), ids.len()), (BACKLOG, BACKLOG), "each once");
    assert_eq!(
        receiver.most_in_flight(),
        2,
        "webhooks.per_endpoint bounds the backlog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_hanging_endpoints_do_not_take_every_slot_from_another_user() {
    let app = App::start_with(|c| {
        c.webhooks.allow = vec!["127.0.0.1".into()];
        c.webhooks.schedule_secs = vec![0, 1, 1, 1];
        // Three slots in this replica; one user's endpoints may hold two of them.
        c.webhooks.concurrency = 3;
        c.webhooks.per_endpoint = 1;
        c.webhooks.per_user = 2;
        c.webhooks.timeout_secs = 300;
    })
    .await;
    let receiver = Receiver::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let mallory = app.sign_up("mallory@example.com").await;
    let mallory_id = user_id(&app, &mallory).await;
    for path in ["/m1", "/m2", "/m3"] {
        receiver.script(path, &[HANG]);
        create_endpoint(&app, &mallory, &receiver.url(path), &["task.assigned"]).await;
    }
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    create_endpoint(&app, &bob, &receiver.url("/bob"), &["task.assigned"]).await;

    assign_task_to(&app, &ada, &mallory_id, "Hang").await;
    let hanging = || {
        ["/m1", "/m2", "/m3"]
            .iter()
            .map(|p| receiver.requests(p).len())
            .sum::<usize>()
    };
    eventually("two of Mallory's deliveries hanging", WAIT, || async {
        (hanging() == 2).then_some(())
    })
    .await;
    assign_task_to(&app, &ada, &bob_id, "Go").await;
    // Bob's delivery goes through the slot Mallory's third may not take, while hers hang.
    receiver.wait_for("/bob", 1).await;
    assert_eq!(
        hanging(),
        2,
        "Mallory's third waits for one of her own to end"
    );
    receiver.release();
    eventually("Mallory's third delivery", WAIT, || async {
        (hanging() == 3).then_some(())
    })
    .await;
}

/// The webhook routes against their OpenAPI description, as `contract.rs` checks the whole API
/// (schemathesis; run with `--ignored`, the full contract test covers these routes too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: schemathesis; contract.rs runs it over the whole API"]
async fn every_webhook_answer_is_documented() {
    let app = app().await;
    let ada = app.sign_up("ada@example.com").await;
    create_endpoint(&app, &ada, "http://127.0.0.1:9/hook", &["task.assigned"]).await;
    let (status, document) = app.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = &document["paths"];
    assert_eq!(
        paths["/api/v1/webhooks"]["post"]["tags"],
        json!(["webhooks"])
    );
    assert!(paths["/api/v1/webhooks/{id}/deliveries"]["get"]["responses"]["404"].is_object());
    let dir = std::env::temp_dir().join(format!("taskmesh-webhooks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("openapi.json"), document.to_string()).unwrap();
    let output = std::process::Command::new(common::venv_python().with_file_name("schemathesis"))
        .arg("run")
        .arg(dir.join("openapi.json"))
        .args(["--url", &app.api, "-H", &format!("Authorization: Bearer {ada}")])
        .args(["--include-path-regex", "^/api/v1/webhooks"])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "30", "--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--workers", "1", "--request-timeout", "30", "--suppress-health-check", "too_slow"])
        .args(["--generation-database", "none", "--no-color"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}
