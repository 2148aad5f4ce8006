//! Jobs on real worker processes (`taskmesh serve worker`) and the real broker: volume with
//! exactly-once effects, `kill -9` mid-job, a crash between a report and its mark, graceful
//! shutdown, and a worker in Python.

mod common;

use std::time::Duration;

use common::jobs::{job_config, worker_state, Effects, WorkerProcess};
use common::{App, WAIT};
use futures::StreamExt;
use serde_json::{json, Value};
use shared::testkit::eventually;

/// Creates `n` jobs, 16 requests at a time; returns their ids.
async fn create_many(
    app: &App,
    token: &str,
    n: usize,
    job: impl Fn(usize) -> Value,
) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| {
            let body = json!({"title": format!("job {i}"), "job": job(i)});
            async move {
                let (status, task) = app.post("/api/v1/tasks", Some(token), body).await;
                assert_eq!(status, 201, "{task}");
                task["id"].as_str().unwrap().to_string()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Waits until every task in `ids` is `completed`.
async fn wait_all_completed(app: &App, ids: &[String], deadline: Duration) {
    let db = app.db(&app.env.config.task.database).await;
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.parse().unwrap()).collect();
    eventually("every job completed", deadline, || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE id = ANY($1) AND status <> 'completed'",
        )
        .bind(&ids)
        .fetch_one(&db)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
}

/// Once `victim` (on pool `crash`) holds at least two running runs, kills it with SIGKILL and
/// starts a survivor on the same pool; returns the survivor.
async fn kill_mid_run(
    app: &App,
    db: &sqlx::PgPool,
    mut victim: WorkerProcess,
    env: &[(&str, &str)],
) -> WorkerProcess {
    eventually("the victim holds running runs", WAIT, || async {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_attempts WHERE worker_id = 'victim' AND outcome = 'running'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        (running >= 2).then_some(())
    })
    .await;
    victim.kill9().await;
    WorkerProcess::start(app, "survivor", &["crash"], env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_jobs_through_two_worker_processes_have_exactly_one_effect_each() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    let _one = WorkerProcess::start(&app, "w1", &["bulk"], &[]).await;
    let _two = WorkerProcess::start(&app, "w2", &["bulk"], &[]).await;

    let ids = create_many(
        &app,
        &ada,
        1000,
        |_| json!({"kind": "http", "pool": "bulk", "payload": effects.job("")}),
    )
    .await;
    wait_all_completed(&app, &ids, Duration::from_secs(180)).await;

    assert_eq!(effects.counts().await, (1000, 0));
    // Both processes took a share.
    let db = app.db(&app.env.config.task.database).await;
    let by_worker: Vec<(String, i64)> = sqlx::query_as(
        "SELECT worker_id, count(*) FROM job_attempts GROUP BY worker_id ORDER BY worker_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(by_worker.len(), 2, "{by_worker:?}");
    assert!(by_worker.iter().all(|(_, n)| *n > 100), "{by_worker:?}");
    assert_eq!(by_worker.iter().map(|(_, n)| n).sum::<i64>(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_worker_mid_job_loses_nothing_and_duplicates_nothing() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.worker_dead_after_secs = 3;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let admin = app.admin_token().await;
    let effects = Effects::start(&app).await;
    let concurrency = [("TASKMESH_WORKERS__CONCURRENCY", "4")];
    let victim = WorkerProcess::start(&app, "victim", &["crash"], &concurrency).await;

    // Each job works 3 s before its effect: a run seen running (its start is reported after
    // `report_started_after_ms`, 200 ms) is still running when the victim dies, however slowly a
    // loaded machine answers the poll below.
    let ids = create_many(
        &app,
        &ada,
        12,
        |_| json!({"kind": "http", "pool": "crash", "payload": effects.job("delay_ms=3000")}),
    )
    .await;
    let db = app.db(&app.env.config.task.database).await;
    let _survivor = kill_mid_run(&app, &db, victim, &concurrency).await;

    wait_all_completed(&app, &ids, Duration::from_secs(120)).await;
    let (effected, repeated) = effects.counts().await;
    assert_eq!(effected, 12, "lost jobs");
    // A killed run may have made its effect before dying; its rerun found it done.
    let rerun_hits: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(calls - 1), 0) FROM test_effects")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(repeated <= 4 && rerun_hits <= 4, "{repeated} {rerun_hits}");
    let lost: Vec<(String, String)> =
        sqlx::query_as("SELECT task_id::text, worker_id FROM job_attempts WHERE outcome = 'lost'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(!lost.is_empty(), "the lost runs are in the history");
    assert!(lost.iter().all(|(_, w)| w == "victim"), "{lost:?}");
    // Visible through the API too.
    let history = app.attempts(&ada, &lost[0].0).await;
    let outcomes: Vec<&str> = history
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["lost", "succeeded"], "{history:?}");
    // The killed worker is listed dead.
    eventually("the victim is listed dead", WAIT, || async {
        (worker_state(&app, &admin, "victim").await.as_deref() == Some("dead")).then_some(())
    })
    .await;
    assert_eq!(
        worker_state(&app, &admin, "survivor").await.as_deref(),
        Some("alive")
    );
}

/// A counter from a process's `/metrics` at `addr` (0 while it has not been counted).
async fn counter(addr: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_between_its_report_and_its_mark_leaves_no_copy_to_run_again() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    // The victim dies right after the broker confirmed its first report: the run is over and
    // reported, its dispatch neither acked nor marked done by the worker.
    let mut victim = WorkerProcess::start(
        &app,
        "victim",
        &["crash"],
        &[
            ("TASKMESH_WORKERS__CONCURRENCY", "1"),
            ("TASKMESH_CRASH", "after_report"),
        ],
    )
    .await;
    let ids = create_many(
        &app,
        &ada,
        1,
        |_| json!({"kind": "http", "pool": "crash", "payload": effects.job("")}),
    )
    .await;
    let exit = victim.exited(WAIT).await;
    assert!(!exit.success(), "the victim crashed: {exit:?}");
    wait_all_completed(&app, &ids, WAIT).await;

    // The broker hands the unacked dispatch to the next worker: a copy of a finished run,
    // settled without running (before the fix it waited for the dead run's claim to lapse,
    // then ran the job a second time).
    let survivor = WorkerProcess::start(&app, "survivor", &["crash"], &[]).await;
    let addr = survivor.addr().await;
    let settled = eventually(
        "the survivor settles the copy (or runs it)",
        WAIT,
        || async {
            if counter(&addr, "taskmesh_worker_redelivered_finished_total").await >= 1.0 {
                return Some(Ok(()));
            }
            let counts = effects.counts().await;
            (counts != (1, 0)).then_some(Err(counts))
        },
    )
    .await;
    assert_eq!(settled, Ok(()), "the copy ran: (effects, made twice)");
    assert_eq!(effects.counts().await, (1, 0), "one effect, made once");
    let history = app.attempts(&ada, &ids[0]).await;
    let outcomes: Vec<&str> = history
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded"], "{history:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_unfinished_jobs_back_and_loses_nothing() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let admin = app.admin_token().await;
    let settings = [
        ("TASKMESH_WORKERS__CONCURRENCY", "2"),
        ("TASKMESH_WORKERS__SHUTDOWN_GRACE_SECS", "1"),
    ];
    let mut leaving = WorkerProcess::start(&app, "leaving", &["graceful"], &settings).await;
    // Two long jobs (longer than the grace) and two short ones behind them.
    let long = create_many(
        &app,
        &ada,
        2,
        |_| json!({"kind": "sleep", "pool": "graceful", "payload": {"ms": 30_000}}),
    )
    .await;
    let short = create_many(
        &app,
        &ada,
        2,
        |_| json!({"kind": "noop", "pool": "graceful"}),
    )
    .await;
    for id in &long {
        app.wait_status(&ada, id, "running").await;
    }
    let exit = leaving.terminate(Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        worker_state(&app, &admin, "leaving").await.as_deref(),
        Some("stopped")
    );
    for id in &long {
        let attempts = eventually("the run is handed back", WAIT, || async {
            let attempts = app.attempts(&ada, id).await;
            (attempts.first()?["outcome"] == "interrupted").then_some(attempts)
        })
        .await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(app.task(&ada, id).await["status"], "queued");
    }
    // Another worker finishes everything.
    let _next = WorkerProcess::start(&app, "next", &["graceful"], &[]).await;
    for id in short.iter() {
        app.wait_status(&ada, id, "completed").await;
    }
    for id in &long {
        let running = app.wait_status(&ada, id, "running").await;
        assert_eq!(
            running["job"]["attempt"], 1,
            "a hand-back is not a failed attempt"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_worker_joins_a_pool_by_following_the_asyncapi_document() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let python = common::venv_python();

    // The pool's queue exists once a job was created for it.
    let task = app
        .create_job(
            &ada,
            "add in Python",
            json!({"kind": "py.add", "pool": "py", "payload": {"a": 2, "b": 40}}),
        )
        .await;
    let c = &app.env.config.amqp;
    let mut worker = tokio::process::Command::new(python)
        .arg(format!("{root}/examples/python-worker/worker.py"))
        .args(["--pool", "py", "--worker-id", "python-test"])
        .env(
            "TASKMESH_AMQP__URL",
            secrecy::ExposeSecret::expose_secret(&c.url),
        )
        .env("TASKMESH_AMQP__NAMESPACE", &c.namespace)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let id = task["id"].as_str().unwrap();
    let done = app.wait_status(&ada, id, "completed").await;
    assert_eq!(done["job"]["result"]["sum"], 42);
    let attempts = app.attempts(&ada, id).await;
    assert_eq!(attempts[0]["worker_id"], "python-test");

    // Its refusals follow the contract too: a bad payload is dead at once.
    let bad = app
        .create_job(
            &ada,
            "bad add",
            json!({"kind": "py.add", "pool": "py", "payload": {"a": "two"}, "max_attempts": 5}),
        )
        .await;
    let dead = app
        .wait_status(&ada, bad["id"].as_str().unwrap(), "dead")
        .await;
    assert_eq!(dead["job"]["attempt"], 1);
    worker.start_kill().unwrap();
    let _ = worker.wait().await;
}

/// A fan-out of `width` http steps on `pool` (each working `delay_ms` before its effect), a join
/// that needs them all, and a step after the join.
fn fan_out_and_join(effects: &Effects, pool: &str, width: usize, delay_ms: u64) -> Value {
    let http = |query: &str| json!({"kind": "http", "pool": pool, "payload": effects.job(query)});
    let mut steps: Vec<Value> = (0..width)
        .map(|i| json!({"id": format!("s{i}"), "job": http(&format!("delay_ms={delay_ms}"))}))
        .collect();
    let all: Vec<String> = (0..width).map(|i| format!("s{i}")).collect();
    steps.push(json!({"id": "join", "needs": all, "job": http("")}));
    steps.push(json!({"id": "after", "needs": ["join"], "job": http("")}));
    json!({"title": "fan-out", "steps": steps})
}

/// Runs of task `id` (every outcome), from task-svc's records.
async fn runs_of(db: &sqlx::PgPool, id: &Value) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_attempts WHERE task_id = $1::uuid")
        .bind(id.as_str().unwrap())
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_workflow_leaves_one_effect_per_step_and_starts_the_join_once() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.worker_dead_after_secs = 3;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    let concurrency = [("TASKMESH_WORKERS__CONCURRENCY", "4")];
    let victim = WorkerProcess::start(&app, "victim", &["crash"], &concurrency).await;
    // Each branch works 3 s before its effect: runs seen running are still running at the kill.
    let created = app
        .create_workflow(&ada, fan_out_and_join(&effects, "crash", 6, 3000))
        .await;
    let id = created["id"].as_str().unwrap();
    let db = app.db(&app.env.config.task.database).await;
    let _survivor = kill_mid_run(&app, &db, victim, &concurrency).await;
    let done = app
        .wait_workflow_within(&ada, id, "completed", Duration::from_secs(120))
        .await;
    // Every step's effect (keyed by its task): none missing; a second call only where a killed
    // run may have reached the endpoint before dying, and its rerun found it done.
    let lost: i64 = sqlx::query_scalar("SELECT count(*) FROM job_attempts WHERE outcome = 'lost'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(lost > 0, "the kill interrupted some steps");
    let (effected, repeated) = effects.counts().await;
    assert_eq!(effected, 8, "{done}");
    assert!(repeated <= lost, "{repeated} repeated, {lost} lost");
    // The join and the step after it started once each, after the kill.
    for step in ["join", "after"] {
        let task = &common::workflows::step_of(&done, step)["task_id"];
        assert_eq!(runs_of(&db, task).await, 1, "{step}: {done}");
    }
}
