//! Per-key limits (issue 27): a key never runs more jobs at once than its `concurrency` (seen
//! from the runs' own times) while other keys keep running, `per_second` paces starts, a place
//! freed by a cancel is taken by the next waiting job, and a workflow's map runs obey their
//! step's limit. Every job runs on the real in-process worker through RabbitMQ.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::jobs::{job_config, time, Effects};
use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::eventually;

/// Creates `jobs` in one bulk request; their task ids, in order.
async fn create_all(app: &App, token: &str, title: &str, jobs: Vec<Value>) -> Vec<String> {
    let tasks: Vec<Value> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| json!({"title": format!("{title} {i}"), "job": job}))
        .collect();
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(token), json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

/// Each task's single run, once all have completed: (started, ended).
async fn runs(app: &App, token: &str, ids: &[String]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut runs = Vec::new();
    for id in ids {
        app.wait_status(token, id, "completed").await;
        let attempts = app.attempts(token, id).await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        runs.push((
            time(&attempts[0]["started_at"]),
            time(&attempts[0]["ended_at"]),
        ));
    }
    runs
}

/// Most runs open at one moment.
fn most_at_once(runs: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    runs.iter()
        .map(|(start, _)| runs.iter().filter(|(s, e)| s <= start && start < e).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_never_runs_more_than_its_concurrency_while_other_keys_pass() {
    // Three slots: a key holding every queued job would hold them all.
    let app = App::start_with(|c| {
        job_config(c);
        c.workers.concurrency = 3;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let slow = json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 300},
                      "limit": {"key": "customer-42", "concurrency": 2}});
    let held = create_all(&app, &ada, "slow", vec![slow; 8]).await;
    let first = app.task(&ada, &held[0]).await;
    assert_eq!(
        first["job"]["limit"],
        json!({"key": "customer-42", "concurrency": 2, "per_second": null})
    );
    assert_eq!(first["job"]["limit_state"], "admitted", "{first}");
    let last = app.task(&ada, &held[7]).await;
    assert_eq!(last["job"]["limit_state"], "waiting", "{last}");
    assert_eq!(last["status"], "queued");
    // Ada sees her key: two in flight at most, the rest waiting.
    let (status, limits) = app.get("/api/v1/limits", Some(&ada)).await;
    assert_eq!(status, 200, "{limits}");
    let key = &limits["items"][0];
    assert_eq!(
        (key["key"].as_str(), key["concurrency"].as_i64()),
        (Some("customer-42"), Some(2))
    );
    assert!(key["in_flight"].as_i64().unwrap() <= 2, "{limits}");
    assert!(key["waiting"].as_i64().unwrap() >= 5, "{limits}");
    // Another key's jobs, created after, do not queue behind customer-42's.
    let quick =
        json!({"kind": "echo", "pool": "inproc", "limit": {"key": "customer-7", "concurrency": 4}});
    let others = create_all(&app, &ada, "quick", vec![quick; 4]).await;

    let held_runs = runs(&app, &ada, &held).await;
    assert_eq!(most_at_once(&held_runs), 2, "{held_runs:?}");
    let other_runs = runs(&app, &ada, &others).await;
    let mut starts: Vec<DateTime<Utc>> = held_runs.iter().map(|(s, _)| *s).collect();
    starts.sort();
    let other_end = other_runs.iter().map(|(_, e)| *e).max().unwrap();
    assert!(
        other_end < starts[4],
        "customer-7's jobs ended at {other_end}, after customer-42's fifth start {}",
        starts[4]
    );
    // Their waits are counted.
    let task_svc = app.stack.as_ref().unwrap().config.task.url.clone();
    let throttled = app
        .metric(&task_svc, "taskmesh_jobs_throttled_total", "")
        .await;
    assert!(throttled.is_some_and(|n| n >= 6.0), "{throttled:?}");
    // Another user's key of the same name is theirs alone.
    let bob = app.sign_up("bob@example.com").await;
    let (_, theirs) = app.get("/api/v1/limits", Some(&bob)).await;
    assert_eq!(theirs["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn per_second_paces_the_starts_of_a_key() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let paced =
        json!({"kind": "noop", "pool": "inproc", "limit": {"key": "api", "per_second": 10}});
    let ids = create_all(&app, &ada, "paced", vec![paced; 21]).await;
    // The slots count from the creation's transaction, which began before the key admitted.
    let created = time(&app.task(&ada, &ids[0]).await["created_at"]);
    let runs = runs(&app, &ada, &ids).await;
    let mut starts: Vec<DateTime<Utc>> = runs.iter().map(|(s, _)| *s).collect();
    starts.sort();
    // The pace's slots are 100 ms apart from the creation. A start may come later than its
    // slot (a busy machine delays a delivery, which may then run beside the next), never
    // earlier: the k-th start is no earlier than the k-th slot (a pace even 5 % too fast puts
    // the 21st start before its slot).
    for (k, start) in starts.iter().enumerate() {
        let slot = created + Duration::milliseconds(100 * k as i64);
        assert!(
            *start >= slot - Duration::milliseconds(1),
            "start {k} at {start}, before its slot {slot}: {starts:?}"
        );
    }
    // And not slower than the pace by more than 10 %: 20 gaps in at most 2.22 s.
    let span = (starts[20] - starts[0]).num_milliseconds() as f64 / 1000.0;
    let rate = 20.0 / span;
    assert!(
        rate >= 9.0,
        "20 gaps in {span} s: {rate} a second, over 10 % slower than 10"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_frees_its_place_for_the_next_waiting_job() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let long = json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 60_000},
                      "limit": {"key": "one-at-a-time", "concurrency": 1}});
    let ids = create_all(&app, &ada, "long", vec![long; 3]).await;
    app.wait_status(&ada, &ids[0], "running").await;
    // A waiting job cannot jump the line.
    let reply = app
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/admin/jobs/{}/retry", ids[1]),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(reply.status, 409, "{:?}", reply.body);
    // A waiting job cancelled never runs; the running one cancelled lets the third start.
    assert_eq!(app.cancel(&ada, &ids[1]).await.status, 200);
    assert_eq!(app.cancel(&ada, &ids[0]).await.status, 200);
    app.wait_status(&ada, &ids[2], "running").await;
    assert_eq!(app.attempts(&ada, &ids[1]).await.len(), 0);
    let (_, limits) = app.get("/api/v1/limits", Some(&ada)).await;
    assert_eq!(
        (
            limits["items"][0]["in_flight"].as_i64(),
            limits["items"][0]["waiting"].as_i64()
        ),
        (Some(1), Some(0)),
        "{limits}"
    );
    assert_eq!(app.cancel(&ada, &ids[2]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_limit_is_refused_with_what_is_wrong() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    for (limit, part) in [
        (json!({"key": "k"}), "concurrency, per_second or both"),
        (json!({"key": "", "concurrency": 1}), "key"),
        (json!({"key": "k", "concurrency": 0}), "concurrency"),
        (json!({"key": "k", "per_second": -1}), "per_second"),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/tasks",
                Some(&ada),
                json!({"title": "t", "job": {"kind": "noop", "pool": "inproc", "limit": limit}}),
            )
            .await;
        assert_eq!(status, 422, "{limit}: {body}");
        assert!(body.to_string().contains(part), "{limit}: {body}");
    }
    // An unknown field is named too (a malformed body: 400).
    let (status, body) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "t", "job": {"kind": "noop", "limit": {"key": "k", "burst": 3}}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("burst"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "t", "job": {"kind": "noop", "pool": "inproc",
                   "run_at": Utc::now() + chrono::Duration::hours(1),
                   "limit": {"key": "k", "concurrency": 1}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflows_steps_and_map_runs_obey_their_limits() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "limited fan-out", "steps": [
                {"id": "list", "job": {"kind": "echo", "pool": "inproc",
                                       "payload": {"items": [1, 2, 3, 4, 5, 6]}}},
                {"id": "each", "needs": ["list"], "map": {"step": "list", "pointer": "/payload/items"},
                 "job": {"kind": "sleep", "pool": "inproc", "payload": {"ms": 200},
                         "limit": {"key": "fan-out", "concurrency": 2}}},
                // A step released with a key no job named before.
                {"id": "report", "needs": ["each"],
                 "job": {"kind": "echo", "pool": "inproc",
                         "limit": {"key": "reports", "concurrency": 1}}},
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let done = app.wait_workflow(&ada, id, "completed").await;
    let report = common::workflows::step_of(&done, "report");
    assert_eq!(
        report["result"]["inputs"]["each"].as_array().map(Vec::len),
        Some(6),
        "{report}"
    );
    let db = app.db(&app.env.config.task.database).await;
    let runs: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT a.started_at, a.ended_at FROM job_attempts a JOIN jobs j ON j.task_id = a.task_id
          WHERE j.workflow_id = $1::uuid AND j.item_index IS NOT NULL",
    )
    .bind(id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(runs.len(), 6, "{runs:?}");
    assert_eq!(most_at_once(&runs), 2, "{runs:?}");
    eventually("the keys have nothing in flight", WAIT, || async {
        let (_, limits) = app.get("/api/v1/limits", Some(&ada)).await;
        let keys = limits["items"].as_array()?;
        (keys.len() == 2
            && keys
                .iter()
                .all(|k| k["in_flight"] == 0 && k["waiting"] == 0))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_waits_for_its_keys_pace() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;
    // Fails twice, then succeeds; its backoff alone would retry at once.
    let task = app
        .create_job(
            &ada,
            "flaky",
            json!({"kind": "http", "pool": "inproc", "payload": effects.job("fail_times=2"),
                   "max_attempts": 3, "backoff_base_ms": 1, "backoff_max_ms": 1,
                   "limit": {"key": "slow-api", "per_second": 1}}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    app.wait_status(&ada, id, "completed").await;
    let attempts = app.attempts(&ada, id).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    let starts: Vec<DateTime<Utc>> = attempts.iter().map(|a| time(&a["started_at"])).collect();
    for pair in starts.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(
            gap >= 900,
            "a retry started {gap} ms after the attempt before it, not 1 s"
        );
    }
}
