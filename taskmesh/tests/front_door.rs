//! The gateway's front-door features: idempotency keys, trace context, CORS, the overview, and
//! malformed input on every documented endpoint.

mod common;

use common::{App, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

async fn count(app: &App, database: &str, table: &str) -> i64 {
    let pool = app.db(database).await;
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn post_with_key(app: &App, token: &str, key: &str, body: Value) -> common::Reply {
    common::Reply::read(
        app.http
            .post(format!("{}/api/v1/tasks", app.api))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let first = post_with_key(&app, &token, "k-1", json!({"title": "Pay rent"})).await;
    assert_eq!(first.status, 201);
    let again = post_with_key(&app, &token, "k-1", json!({"title": "Pay rent"})).await;
    assert_eq!(again.status, 201);
    assert_eq!(
        again.body["id"], first.body["id"],
        "the same task, not a new one"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other = post_with_key(&app, &token, "k-1", json!({"title": "Pay rent twice"})).await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused")
    );
    // Keys are per user: another user's identical key is a new request.
    let bob = app.sign_up("bob@example.com").await;
    let bobs = post_with_key(&app, &bob, "k-1", json!({"title": "Pay rent"})).await;
    assert_eq!(bobs.status, 201);
    assert_ne!(bobs.body["id"], first.body["id"]);
    let db = app.env.config.task.database.clone();
    assert_eq!(count(&app, &db, "tasks").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_context_reaches_the_event() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .http
        .post(format!("{}/api/v1/tasks", app.api))
        .bearer_auth(&token)
        .header("traceparent", traceparent)
        .json(&json!({"title": "Traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert!(response.headers().contains_key("x-request-id"));
    let pool = app.db(&app.env.config.task.database).await;
    let carried: Option<String> = sqlx::query_scalar(
        "SELECT payload->>'traceparent' FROM outbox_messages WHERE routing_key = 'task.created'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(carried.as_deref(), Some(traceparent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_for_configured_origins_only() {
    let app =
        App::start_with(|c| c.cors.allowed_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/api/v1/tasks", app.api))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(!refused
        .headers()
        .contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_aggregates_and_marks_a_part_whose_service_is_down() {
    let mut app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    for title in ["One", "Two"] {
        app.post("/api/v1/tasks", Some(&token), json!({"title": title}))
            .await;
    }
    let (status, overview) = app.get("/api/v1/me/overview", Some(&token)).await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["profile"]["email"], "ada@example.com");
    assert_eq!(overview["tasks"]["total"], 2);
    assert_eq!(overview["tasks"]["by_status"]["todo"], 2);
    assert!(overview["notifications"]["unread"].is_u64());
    assert_eq!(overview["unavailable"], json!([]));

    app.stack
        .as_mut()
        .unwrap()
        .stop_service("task-svc")
        .await
        .unwrap();
    let (status, overview) = app.get("/api/v1/me/overview", Some(&token)).await;
    assert_eq!(status, 200, "{overview}");
    assert!(overview["tasks"].is_null());
    assert_eq!(overview["unavailable"], json!(["task-svc"]));
    assert_eq!(overview["profile"]["email"], "ada@example.com");
    assert_eq!(app.get("/api/v1/me/overview", None).await.0, 401);
}

/// Sends raw bytes with a content type.
async fn raw(
    app: &App,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
    json: bool,
) -> (u16, String, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.api))
        .body(body);
    if json {
        request = request.header("content-type", "application/json");
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_a_4xx_problem_everywhere_and_writes_nothing() {
    let app = App::start_with(|c| {
        c.auth.bootstrap_admin_email = Some("admin@example.com".into());
        // Every case must reach its service, not stop at the per-IP limit.
        c.rate_limit.auth_requests = 10_000;
        c.auth.max_failed_logins_per_ip = 10_000;
        c.auth.max_failed_logins_per_source = 10_000;
    })
    .await;
    let admin = app.sign_up_verified("admin@example.com").await;
    let token = app.sign_up("ada@example.com").await;
    let ada_id = app.get("/api/v1/users/me", Some(&token)).await.1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users_before = count(&app, &app.env.config.user.database.clone(), "users").await;

    let endpoints: Vec<(Method, String, Option<String>)> = vec![
        (Method::POST, "/api/v1/auth/register".into(), None),
        (Method::POST, "/api/v1/auth/login".into(), None),
        (Method::POST, "/api/v1/auth/refresh".into(), None),
        (
            Method::PATCH,
            "/api/v1/users/me".into(),
            Some(token.clone()),
        ),
        (
            Method::POST,
            "/api/v1/users/me/password".into(),
            Some(token.clone()),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{ada_id}"),
            Some(admin.clone()),
        ),
        (Method::POST, "/api/v1/tasks".into(), Some(token.clone())),
    ];
    let huge_string = "x".repeat(100_000);
    let bodies: Vec<(&str, Vec<u8>, bool)> = vec![
        ("not json", b"{title: nope".to_vec(), true),
        ("empty", Vec::new(), true),
        ("wrong content type", br#"{"title":"x"}"#.to_vec(), false),
        ("bad utf-8", b"{\"title\":\"\xff\xfe\"}".to_vec(), true),
        ("array", b"[]".to_vec(), true),
        ("wrong types", br#"{"email":1,"password":true,"display_name":[],"title":5,"refresh_token":{},"current_password":1,"new_password":2,"role":7,"active":"no"}"#.to_vec(), true),
        ("unknown field", br#"{"surprise":true}"#.to_vec(), true),
        ("oversized values", serde_json::to_vec(&json!({
            "email": format!("{huge_string}@example.com"), "password": huge_string, "display_name": huge_string,
            "title": huge_string, "refresh_token": huge_string,
        })).unwrap(), true),
        ("huge body", vec![b' '; 2 * 1024 * 1024], true),
    ];
    for (method, path, auth) in &endpoints {
        for (case, body, json) in &bodies {
            let (status, content_type, problem) = raw(
                &app,
                method.clone(),
                path,
                auth.as_deref(),
                body.clone(),
                *json,
            )
            .await;
            assert!(
                (400..500).contains(&status),
                "{case} to {method} {path}: {status} {problem}"
            );
            assert_eq!(
                content_type, "application/problem+json",
                "{case} to {method} {path}"
            );
            assert!(
                problem["code"].is_string(),
                "{case} to {method} {path}: {problem}"
            );
        }
    }
    assert_eq!(
        count(&app, &app.env.config.user.database.clone(), "users").await,
        users_before
    );
    assert_eq!(
        count(&app, &app.env.config.task.database.clone(), "tasks").await,
        0
    );
    // The accounts still work as before.
    let login = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(
        app.get("/api/v1/users/me", Some(&token)).await.1["display_name"],
        "Ada"
    );
}
