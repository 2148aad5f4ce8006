//! End to end through the gateway, with every service running against the real PostgreSQL,
//! RabbitMQ and Redis.

mod common;

use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::{eventually, TestEnv};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_assigned_through_the_gateway_notifies_its_assignee_and_not_its_creator() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;

    let (status, task) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({ "title": "Write the README", "priority": "high", "assignee_id": bob_id }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["priority"], "high");
    let task_id = task["id"].as_str().unwrap().to_string();

    let notes = eventually("Bob's task.assigned notification", WAIT, || async {
        let notes = app.notifications(&bob).await;
        notes
            .iter()
            .any(|n| n["kind"] == "task.assigned")
            .then_some(notes)
    })
    .await;
    let note = notes.iter().find(|n| n["kind"] == "task.assigned").unwrap();
    assert_eq!(note["subject"], task_id.as_str());
    assert_eq!(note["title"], "Ada assigned you “Write the README”");
    assert!(note["link"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/v1/tasks/{task_id}")));

    // user.created travelled the same way: a welcome notification for each.
    eventually("Ada's welcome notification", WAIT, || async {
        let notes = app.notifications(&ada).await;
        notes
            .iter()
            .any(|n| n["kind"] == "user.created")
            .then_some(())
    })
    .await;
    // Ada caused the assignment: she hears nothing about it.
    let adas = app.notifications(&ada).await;
    assert!(
        adas.iter().all(|n| n["subject"] != task_id.as_str()),
        "{adas:?}"
    );

    let (status, fetched) = app
        .get(&format!("/api/v1/tasks/{task_id}"), Some(&bob))
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["title"], "Write the README");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_task_and_notifications_stay_private() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let carol = app.sign_up("carol@example.com").await;
    let carol_id = app.user_id(&carol).await;
    let (_, task) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({ "title": "Ada's secret", "assignee_id": carol_id }),
        )
        .await;
    let task_id = task["id"].as_str().unwrap();

    let (status, body) = app
        .get(&format!("/api/v1/tasks/{task_id}"), Some(&bob))
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = app.get("/api/v1/tasks", Some(&bob)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let carols = eventually("Carol's notification", WAIT, || async {
        let notes = app.notifications(&carol).await;
        notes
            .iter()
            .find(|n| n["subject"] == task_id)
            .map(|n| n["id"].as_str().unwrap().to_string())
    })
    .await;
    let bobs = app.notifications(&bob).await;
    assert!(bobs.iter().all(|n| n["subject"] != task_id), "{bobs:?}");
    // Another's notification is not there for Bob to read or delete.
    let path = format!("/api/v1/notifications/{carols}");
    assert_eq!(
        app.send(reqwest::Method::DELETE, &path, Some(&bob), None)
            .await
            .status,
        404
    );
    let read = format!("{path}/read");
    assert_eq!(
        app.send(reqwest::Method::POST, &read, Some(&bob), None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_missing_forged_and_spoofed_identities() {
    let app = App::start().await;
    let (status, body) = app.get("/api/v1/tasks", None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    let (status, _) = app.get("/api/v1/tasks", Some("not.a.token")).await;
    assert_eq!(status, 401);

    // A header that only the gateway may set is ignored when a client sends it.
    let response = app
        .http
        .get(format!("{}/api/v1/tasks", app.api))
        .header("x-taskmesh-user-id", uuid::Uuid::now_v7().to_string())
        .header("x-taskmesh-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // A token signed by a key user-svc never published.
    let token = app.sign_up("ada@example.com").await;
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_signature = "A".repeat(parts[2].len());
    parts[2] = &forged_signature;
    let (status, _) = app.get("/api/v1/tasks", Some(&parts.join("."))).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_document_and_writes_nothing() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    for (body, code) in [
        (json!({ "title": "" }), "invalid_title"),
        (
            json!({ "title": "x", "owner_id": "someone" }),
            "invalid_body",
        ),
        (json!({ "title": 5 }), "invalid_body"),
        (json!({ "title": "x".repeat(201) }), "invalid_title"),
    ] {
        let (status, problem) = app.post("/api/v1/tasks", Some(&token), body).await;
        assert!((400..500).contains(&status), "{status} {problem}");
        assert_eq!(problem["code"], code, "{problem}");
    }
    let (status, problem) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": "ada@example.com", "password": "another long one", "display_name": "Ada" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("email_taken"))
    );
    let (_, list) = app.get("/api/v1/tasks", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_reports_health_readiness_and_metrics() {
    let app = App::start().await;
    for url in app.service_urls() {
        let health = app.http.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200, "{url}");
        let ready: Value = app
            .http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["status"], "ready", "{url}: {ready}");
        let metrics = app
            .http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("taskmesh_http_requests_total"), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_dependency_that_is_down() {
    let env = TestEnv::new();
    let mut config = env.config.clone();
    // Nothing listens on port 1: RabbitMQ is "down" for this worker.
    config.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".to_string().into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(worker::run(config, listener, shutdown.clone()));

    let http = reqwest::Client::new();
    let (status, body) = eventually("the worker to answer", WAIT, || async {
        let response = http.get(format!("{url}/readyz")).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json::<Value>().await.ok()?))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["rabbitmq"], "unavailable");
    assert_eq!(body["checks"]["redis"], "ok");
    assert!(body["detail"].as_str().unwrap().contains("rabbitmq"));
    shutdown.cancel();
    worker.await.unwrap().unwrap();
}
