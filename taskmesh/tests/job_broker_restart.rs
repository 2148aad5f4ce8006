//! RabbitMQ restarted while a thousand jobs are being dispatched: every job completes
//! afterwards, with exactly one effect each. Its own test binary, because it takes the machine's
//! broker away from every test running beside it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::jobs::{job_config, Effects, WorkerProcess};
use common::App;
use futures::StreamExt;
use serde_json::json;
use shared::testkit::eventually;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl").args(args).status().unwrap();
    assert!(status.success(), "rabbitmqctl {args:?}: {status}");
}

fn broker_answers() -> bool {
    Command::new("rabbitmq-diagnostics")
        .args(["-q", "check_port_connectivity"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_rabbitmq_mid_dispatch_loses_no_job() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    let _worker = WorkerProcess::start(&app, "steady", &["restart"], &[]).await;

    // Create a thousand jobs in the background while the broker goes away and comes back.
    let creating = {
        let (api, token, payload) = (app.api.clone(), ada.clone(), effects.job(""));
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            futures::stream::iter(0..1000)
                .map(|i| {
                    let request = http
                        .post(format!("{api}/api/v1/tasks"))
                        .bearer_auth(&token)
                        .json(&json!({"title": format!("job {i}"),
                                      "job": {"kind": "http", "pool": "restart", "payload": payload}}));
                    async move { request.send().await.unwrap().status().as_u16() }
                })
                .buffer_unordered(8)
                .collect::<Vec<u16>>()
                .await
        })
    };
    let db = app.db(&app.env.config.task.database).await;
    eventually(
        "dispatching is under way",
        Duration::from_secs(60),
        || async {
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
                    .fetch_one(&db)
                    .await
                    .unwrap();
            (done >= 100).then_some(())
        },
    )
    .await;

    // A full broker restart: the node stops and starts again from disk.
    tokio::task::spawn_blocking(|| {
        rabbitmqctl(&["stop"]);
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .status()
            .unwrap();
        assert!(status.success());
    })
    .await
    .unwrap();
    eventually("RabbitMQ is back", Duration::from_secs(120), || async {
        tokio::task::spawn_blocking(broker_answers)
            .await
            .unwrap()
            .then_some(())
    })
    .await;

    let statuses = creating.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every creation was accepted"
    );
    eventually("every job completed", Duration::from_secs(240), || async {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status <> 'completed'")
                .fetch_one(&db)
                .await
                .unwrap();
        (open == 0).then_some(())
    })
    .await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(total, 1000);
    assert_eq!(effects.counts().await.0, 1000, "one effect per job");
    // The management API (plugins come back with the node) serves the other tests' clean-up.
    eventually(
        "the management API is back",
        Duration::from_secs(60),
        || async {
            let url = format!("{}/api/overview", app.env.config.amqp.management_url);
            let ok = reqwest::Client::new()
                .get(url)
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ok.then_some(())
        },
    )
    .await;
}
