//! Two notify-svc processes on one deployment: each (event, recipient, channel) is delivered
//! once, mail counted by Message-ID at a real SMTP server, webhooks by `webhook-id` at a
//! receiver.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::{extract::State, http::HeaderMap, routing::post, Router};
use common::notify::{mail_dir, SmtpSink};
use common::{App, WAIT};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use shared::testkit::eventually;

/// A webhook receiver: how often each `webhook-id` arrived.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

async fn receiver() -> (String, Receiver) {
    let state = Receiver::default();
    let app = Router::new()
        .route(
            "/hook",
            post(|State(r): State<Receiver>, headers: HeaderMap| async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                *r.seen.lock().unwrap().entry(id).or_default() += 1;
                axum::http::StatusCode::NO_CONTENT
            }),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_notify_svc_processes_deliver_each_mail_and_webhook_once() {
    const N: usize = 100;
    let dir = mail_dir("replicas");
    let sink = SmtpSink::start(&dir, 0);
    let smtp = format!("smtp://127.0.0.1:{}", sink.port);
    let app = App::start_with(|c| {
        c.smtp.url = Some(smtp.clone().into());
        c.notifications.email_hourly_cap = 10_000;
        c.webhooks.allow = vec!["127.0.0.1".into()];
    })
    .await;

    // The second notify-svc: its own process, same database and queues.
    let c = &app.env.config;
    let port = free_port();
    let mut second = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskmesh"))
        .args(["serve", "notify-svc"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TASKMESH_POSTGRES__URL", c.postgres.url.expose_secret())
        .env("TASKMESH_NOTIFY__DATABASE", &c.notify.database)
        .env("TASKMESH_NOTIFY__BIND", format!("127.0.0.1:{port}"))
        .env(
            "TASKMESH_INTERNAL__SECRET",
            c.internal.secret.as_ref().unwrap().expose_secret(),
        )
        .env("TASKMESH_AMQP__URL", c.amqp.url.expose_secret())
        .env("TASKMESH_AMQP__NAMESPACE", &c.amqp.namespace)
        .env(
            "TASKMESH_AMQP__QUEUE_EXPIRES_MS",
            c.amqp.queue_expires_ms.unwrap_or(300_000).to_string(),
        )
        .env("TASKMESH_REDIS__URL", c.redis.url.expose_secret())
        .env("TASKMESH_REDIS__KEY_PREFIX", &c.redis.key_prefix)
        .env("TASKMESH_CONSUMER__RETRY_BASE_MS", "100")
        .env("TASKMESH_CONSUMER__RETRY_MAX_MS", "2000")
        .env("TASKMESH_SMTP__URL", &smtp)
        .env("TASKMESH_NOTIFICATIONS__EMAIL_HOURLY_CAP", "10000")
        .env("TASKMESH_WEBHOOKS__ALLOW", "[\"127.0.0.1\"]")
        .env("TASKMESH_LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the taskmesh binary starts");
    let http = reqwest::Client::new();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    eventually("the second notify-svc is ready", WAIT, || async {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .ok()?;
        ready.status().is_success().then_some(())
    })
    .await;

    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_verified_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    let (hook_url, hooks) = receiver().await;
    let (status, endpoint) = app
        .post(
            "/api/v1/webhooks",
            Some(&bob),
            json!({"url": hook_url, "event_types": ["task.assigned"], "description": "replicas"}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");

    let tasks: Vec<Value> = (0..N)
        .map(|i| json!({"title": format!("replica {i}"), "assignee_id": bob_id}))
        .collect();
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");

    let mails = eventually("every assignment mailed", WAIT * 2, || async {
        let mails: Vec<_> = sink
            .mails()
            .into_iter()
            .filter(|m| m.subject.starts_with("Ada assigned you “replica"))
            .collect();
        (mails.len() >= N).then_some(mails)
    })
    .await;
    eventually(
        "every assignment delivered to the webhook",
        WAIT * 2,
        || async { (hooks.seen.lock().unwrap().len() >= N).then_some(()) },
    )
    .await;
    let mut ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "one Message-ID per assignment");
    assert_eq!(mails.len(), N, "no mail twice");
    let seen = hooks.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), N, "one webhook-id per assignment");
    assert!(
        seen.values().all(|n| *n == 1),
        "no delivery twice: {seen:?}"
    );
    // Both processes did part of the work.
    let text = http
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("taskmesh_notify_mail_total")
                && l.contains("outcome=\"sent\"")
                && !l.ends_with(" 0")),
        "the second process sent no mail:\n{text}"
    );
    second.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
