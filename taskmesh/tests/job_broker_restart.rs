//! RabbitMQ restarted or paused while jobs are being dispatched and run: every job completes
//! afterwards, with exactly one effect each, and no finished job runs again. Its own test binary,
//! because it takes the machine's broker away from every test running beside it; its tests take
//! turns ([`BROKER`]).

mod common;

use std::process::Command;
use std::time::Duration;

use common::jobs::{job_config, Effects, WorkerProcess};
use common::App;
use futures::StreamExt;
use serde_json::json;
use shared::testkit::eventually;
use tokio_util::sync::CancellationToken;

/// One test at a time takes the broker away.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl").args(args).status().unwrap();
    assert!(status.success(), "rabbitmqctl {args:?}: {status}");
}

async fn broker_is_back() {
    eventually("RabbitMQ is back", Duration::from_secs(120), || async {
        tokio::task::spawn_blocking(broker_answers)
            .await
            .unwrap()
            .then_some(())
    })
    .await;
}

/// A full broker restart: the node stops and starts again from disk; returns once it answers.
async fn restart_broker() {
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
    broker_is_back().await;
}

/// Waits until at least `n` tasks are completed.
async fn completed_at_least(db: &sqlx::PgPool, n: i64, what: &str) {
    eventually(what, Duration::from_secs(60), || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'completed'")
            .fetch_one(db)
            .await
            .unwrap();
        (done >= n).then_some(())
    })
    .await;
}

fn broker_answers() -> bool {
    Command::new("rabbitmq-diagnostics")
        .args(["-q", "check_port_connectivity"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_rabbitmq_mid_dispatch_loses_no_job() {
    let _turn = BROKER.lock().await;
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
    completed_at_least(&db, 100, "dispatching is under way").await;

    // A full broker restart: the node stops and starts again from disk.
    restart_broker().await;

    let statuses = creating.await.unwrap();
    let refused: Vec<u16> = statuses.iter().copied().filter(|s| *s != 201).collect();
    assert!(
        refused.is_empty(),
        "every creation was accepted, but {} answered {refused:?}",
        refused.len()
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
    management_api_is_back(&app).await;
}

async fn management_api_is_back(app: &App) {
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

/// The operator's scenario: jobs created at a steady rate (25 every quarter second) through two
/// worker processes, each job calling an endpoint that takes a while, and RabbitMQ's application
/// stopped for five seconds mid-run; creation goes on until a second after it is back. Dispatches
/// running at the stop finish while the broker is away; their reports go out once it is back, but
/// their deliveries died with the old connection and the broker hands them out again. Such a copy
/// must settle without running.
///
/// When the broker returns, every process of the platform (all six services and both workers
/// on this machine's two cores) works off the backlog at once, and 100 creations a second come
/// on top: some wait past the database pool's 3 s and are refused with 503 (measured: 3 to 491
/// of about 2,000 in 3 runs of 4, with 10 connections). A refusal is the overloaded platform's
/// right answer, not a lost job, so creations may answer 201 or 503, nothing else; what the
/// test holds to is that every task that exists runs exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn pausing_rabbitmq_during_a_busy_run_runs_no_finished_job_twice() {
    let _turn = BROKER.lock().await;
    // task-svc with a deployment's pool (10 connections, `postgres.max_connections`), not the
    // tests' 5.
    let app = App::start_with(|c| {
        job_config(c);
        c.postgres.max_connections = shared::Config::default().postgres.max_connections;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    let _a = WorkerProcess::start(&app, "pause-a", &["pause"], &[]).await;
    let _b = WorkerProcess::start(&app, "pause-b", &["pause"], &[]).await;

    let load_done = CancellationToken::new();
    let creating = {
        let (api, token, payload) = (app.api.clone(), ada.clone(), effects.job("delay_ms=300"));
        let done = load_done.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut requests = Vec::new();
            let mut round = 0;
            while !done.is_cancelled() {
                tick.tick().await;
                round += 1;
                for i in 0..25 {
                    let request = http
                        .post(format!("{api}/api/v1/tasks"))
                        .bearer_auth(&token)
                        .json(&json!({"title": format!("job {round}.{i}"),
                                      "job": {"kind": "http", "pool": "pause", "payload": payload}}));
                    requests.push(tokio::spawn(async move {
                        request.send().await.unwrap().status().as_u16()
                    }));
                }
            }
            let mut statuses = Vec::new();
            for request in requests {
                statuses.push(request.await.unwrap());
            }
            statuses
        })
    };
    eventually(
        "endpoint calls are under way",
        Duration::from_secs(60),
        || async { (effects.in_flight() >= 5).then_some(()) },
    )
    .await;

    tokio::task::spawn_blocking(|| {
        rabbitmqctl(&["stop_app"]);
        std::thread::sleep(Duration::from_secs(5)); // the outage itself, not a synchronisation
        rabbitmqctl(&["start_app"]);
    })
    .await
    .unwrap();
    broker_is_back().await;
    let settled_before = effects.counts().await.0;
    eventually("jobs run again", Duration::from_secs(60), || async {
        (effects.counts().await.0 > settled_before + 25).then_some(())
    })
    .await;
    load_done.cancel();

    let statuses = creating.await.unwrap();
    let unexpected: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|s| *s != 201 && *s != 503)
        .collect();
    assert!(
        unexpected.is_empty(),
        "creations answer 201, or 503 when overloaded, but {} answered {unexpected:?}",
        unexpected.len()
    );
    let accepted = statuses.iter().filter(|s| **s == 201).count() as i64;
    let db = app.db(&app.env.config.task.database).await;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    eventually("every job completed", Duration::from_secs(240), || async {
        (count("SELECT count(*) FROM tasks WHERE status <> 'completed'").await == 0).then_some(())
    })
    .await;
    let twice = count(
        "SELECT count(*) FROM (SELECT task_id FROM job_attempts WHERE outcome = 'succeeded'
                                GROUP BY task_id HAVING count(*) > 1) t",
    )
    .await;
    // A 503 from the gateway's upstream timeout may come after task-svc committed: such a
    // task exists and must run too, so the tasks are counted, not the answers.
    let tasks = count("SELECT count(*) FROM tasks").await;
    assert!(
        (accepted..=statuses.len() as i64).contains(&tasks),
        "{tasks} tasks for {accepted} accepted of {} creations",
        statuses.len()
    );
    let (distinct, repeated) = effects.counts().await;
    assert_eq!(distinct, tasks, "one effect per job");
    assert_eq!(twice, 0, "tasks with two successful runs");
    assert_eq!(repeated, 0, "endpoint calls repeated for one job");
    management_api_is_back(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restarting_rabbitmq_mid_workflow_runs_each_step_once_and_each_join_once() {
    let _turn = BROKER.lock().await;
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    let _worker = WorkerProcess::start(&app, "steady", &["restart"], &[]).await;
    // A chain of 40 links, then a fan-out of 20 and a join: each link and branch an effect.
    let http = || json!({"kind": "http", "pool": "restart", "payload": effects.job("")});
    let mut steps: Vec<serde_json::Value> = (0..40)
        .map(|i| match i {
            0 => json!({"id": "l0", "job": http()}),
            _ => json!({"id": format!("l{i}"), "needs": [format!("l{}", i - 1)], "job": http()}),
        })
        .collect();
    steps.extend((0..20).map(|i| json!({"id": format!("b{i}"), "needs": ["l39"], "job": http()})));
    let branches: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    steps.push(json!({"id": "join", "needs": branches, "job": http()}));
    let created = app
        .create_workflow(&ada, json!({"title": "through a restart", "steps": steps}))
        .await;
    let id = created["id"].as_str().unwrap();
    let db = app.db(&app.env.config.task.database).await;
    completed_at_least(&db, 5, "the chain is under way").await;
    restart_broker().await;
    let done = app
        .wait_workflow_within(&ada, id, "completed", Duration::from_secs(240))
        .await;
    assert_eq!(
        effects.counts().await,
        (61, 0),
        "one effect per step: {done}"
    );
    // Each step was released once (one dispatch each), and the join ran once.
    let dispatches: Vec<i32> =
        sqlx::query_scalar("SELECT attempt FROM jobs WHERE workflow_id = $1::uuid")
            .bind(id)
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(dispatches, vec![1; 61], "{done}");
    let join = common::workflows::step_of(&done, "join")["task_id"].clone();
    let join_runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_attempts WHERE task_id = $1::uuid")
            .bind(join.as_str().unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(join_runs, 1);
    management_api_is_back(&app).await;
}
