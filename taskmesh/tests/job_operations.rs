//! Operator actions on jobs through the gateway: finding jobs by kind, state, pool and payload
//! content, page by page (admins only), and running a waiting job now, whether it waits for its
//! backoff or for its `run_at`.

mod common;

use chrono::{Duration, Utc};
use common::jobs::{job_config, Effects};
use common::App;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["task_id"].as_str().unwrap().to_string())
        .collect()
}

fn query(filter: &Value) -> String {
    url::form_urlencoded::byte_serialize(filter.to_string().as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_find_jobs_by_kind_state_pool_and_payload_page_by_page() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let later = (Utc::now() + Duration::hours(1)).to_rfc3339();

    let acme = app
        .create_job(
            &ada,
            "acme report",
            json!({"kind": "noop", "pool": "later", "run_at": later,
                   "payload": {"customer": "acme", "pages": 3}}),
        )
        .await;
    let globex = app
        .create_job(
            &ada,
            "globex report",
            json!({"kind": "noop", "pool": "later", "run_at": later,
                   "payload": {"customer": "globex"}}),
        )
        .await;
    let nap = app
        .create_job(
            &ada,
            "a nap",
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 1}}),
        )
        .await;
    app.wait_status(&ada, nap["id"].as_str().unwrap(), "completed")
        .await;

    let (status, page) = app
        .get(
            &format!(
                "/api/v1/admin/jobs?payload={}",
                query(&json!({"customer": "acme"}))
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [acme["id"].as_str().unwrap()]);
    assert_eq!(page["items"][0]["payload"]["pages"], 3);
    assert_eq!(page["items"][0]["status"], "scheduled");
    assert!(page["next_before"].is_null());

    let (_, page) = app
        .get("/api/v1/admin/jobs?kind=noop&state=scheduled", Some(&admin))
        .await;
    // Newest first.
    assert_eq!(
        ids(&page),
        [globex["id"].as_str().unwrap(), acme["id"].as_str().unwrap()]
    );
    let (_, page) = app
        .get(
            "/api/v1/admin/jobs?state=completed&pool=inproc",
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&page), [nap["id"].as_str().unwrap()]);
    assert_eq!(page["items"][0]["kind"], "sleep");

    // Two pages of one, then the last.
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/jobs?limit=1".to_string();
    loop {
        let (status, page) = app.get(&path, Some(&admin)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        match page["next_before"].as_str() {
            Some(before) => path = format!("/api/v1/admin/jobs?limit=1&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 3, "a job came twice: {seen:?}");

    for (path, code) in [
        (
            "/api/v1/admin/jobs?state=stuck".to_string(),
            "invalid_filter",
        ),
        (
            format!("/api/v1/admin/jobs?payload={}", query(&json!([1]))),
            "invalid_filter",
        ),
        (
            "/api/v1/admin/jobs?payload=%7Bnot".to_string(),
            "invalid_filter",
        ),
        (
            format!("/api/v1/admin/jobs?payload={}", "x".repeat(1100)),
            "invalid_filter",
        ),
    ] {
        let (status, body) = app.get(&path, Some(&admin)).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["code"], code, "{path}: {body}");
    }
    let (status, _) = app.get("/api/v1/admin/jobs", Some(&ada)).await;
    assert_eq!(status, 403, "a member may not search every job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_waiting_for_its_backoff_or_its_run_at_runs_now_when_asked() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let effects = Effects::start(&app).await;

    // Fails once, then would wait an hour before its second attempt.
    let flaky = app
        .create_job(
            &ada,
            "flaky call",
            json!({"kind": "http", "pool": "inproc", "payload": effects.job("fail_times=1"),
                   "max_attempts": 3, "backoff_base_ms": 3_600_000, "backoff_max_ms": 3_600_000}),
        )
        .await;
    let flaky_id = flaky["id"].as_str().unwrap();
    app.wait_status(&ada, flaky_id, "retrying").await;

    let retry = |token: &str, id: &str| {
        let path = format!("/api/v1/admin/jobs/{id}/retry");
        let token = token.to_string();
        let app = &app;
        async move { app.post(&path, Some(&token), json!({})).await }
    };
    let (status, body) = retry(&bob, flaky_id).await;
    assert_eq!(status, 404, "another member's job: {body}");
    let (status, body) = retry(&ada, flaky_id).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "retrying");
    let done = app.wait_status(&ada, flaky_id, "completed").await;
    assert_eq!(done["job"]["attempt"], 2);
    assert_eq!(effects.counts().await, (1, 0));

    let (status, body) = retry(&ada, flaky_id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "not_waiting");

    // Scheduled an hour ahead; runs now.
    let later = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let scheduled = app
        .create_job(
            &ada,
            "tomorrow's job",
            json!({"kind": "noop", "pool": "inproc", "run_at": later}),
        )
        .await;
    let scheduled_id = scheduled["id"].as_str().unwrap();
    assert_eq!(scheduled["status"], "scheduled");
    let (status, body) = retry(&ada, scheduled_id).await;
    assert_eq!(status, 202, "{body}");
    app.wait_status(&ada, scheduled_id, "completed").await;

    // A person's task is not a job.
    let (status, task) = app
        .post("/api/v1/tasks", Some(&ada), json!({"title": "by hand"}))
        .await;
    assert_eq!(status, 201, "{task}");
    let (status, body) = retry(&ada, task["id"].as_str().unwrap()).await;
    assert_eq!(status, 409, "{body}");
}

/// The in-process worker's pool reported paused (or not) by its heartbeat.
async fn worker_reports(app: &App, admin: &str, paused: bool) {
    let what = if paused { "paused" } else { "resumed" };
    shared::testkit::eventually(
        &format!("the worker reports inproc {what}"),
        common::WAIT,
        || async {
            let (_, workers) = app.get("/api/v1/workers", Some(admin)).await;
            let reports = workers["items"].as_array()?.iter().any(|w| {
                w["state"] == "alive"
                    && w["details"]["pools"] == "inproc"
                    && (w["details"]["paused"] == "inproc") == paused
            });
            reports.then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_pool_takes_no_jobs_keeps_them_queued_and_runs_them_once_resumed() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let queue = shared::topology::PoolTopology::new(
        &shared::broker::Broker::new(&app.env.config.amqp, "test"),
        "inproc",
    )
    .queue;
    // A job running when the pool is paused finishes: pausing takes nothing from a worker.
    let running = app
        .create_job(
            &ada,
            "long",
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 1500}}),
        )
        .await;
    let running_id = running["id"].as_str().unwrap();
    app.wait_status(&ada, running_id, "running").await;

    let (status, body) = app
        .post("/api/v1/admin/pools/inproc/pause", Some(&ada), json!({}))
        .await;
    assert_eq!(status, 403, "members cannot pause: {body}");
    let (status, body) = app
        .post("/api/v1/admin/pools/inproc/pause", Some(&admin), json!({}))
        .await;
    assert_eq!(
        (status, body["paused"].clone()),
        (200, json!(true)),
        "{body}"
    );
    let (status, _) = app
        .post(
            "/api/v1/admin/pools/not%20a%20pool/pause",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    // A pool that has no jobs yet can be paused ahead of them, and is listed.
    let (status, body) = app
        .post("/api/v1/admin/pools/spare/pause", Some(&admin), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    worker_reports(&app, &admin, true).await;
    let done = app.wait_status(&ada, running_id, "completed").await;
    assert_eq!(
        done["job"]["attempt"], 1,
        "finished, not handed back: {done}"
    );

    // Jobs created while paused are dispatched and wait in the queue, untaken.
    let mut waiting = Vec::new();
    for i in 0..3 {
        let job = app
            .create_job(
                &ada,
                &format!("waits {i}"),
                json!({"kind": "noop", "pool": "inproc"}),
            )
            .await;
        waiting.push(job["id"].as_str().unwrap().to_string());
    }
    shared::testkit::eventually("the three wait in the queue", common::WAIT, || async {
        (common::jobs::queue_depth(&app, &queue).await == 3).then_some(())
    })
    .await;
    let (_, pools) = app.get("/api/v1/admin/pools", Some(&admin)).await;
    let pool = |name: &str| {
        pools["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not listed: {pools}"))
    };
    let inproc = pool("inproc");
    assert_eq!(
        (inproc["paused"].clone(), inproc["queued"].clone()),
        (json!(true), json!(3)),
        "{inproc}"
    );
    let spare = pool("spare");
    assert_eq!(
        (
            spare["paused"].clone(),
            spare["waiting"].clone(),
            spare["queued"].clone()
        ),
        (json!(true), json!(0), json!(0)),
        "{spare}"
    );
    // Two more heartbeats with the pool still paused, and the jobs still untaken.
    worker_reports(&app, &admin, true).await;
    for id in &waiting {
        assert_eq!(app.task(&ada, id).await["status"], "queued");
    }
    assert_eq!(common::jobs::queue_depth(&app, &queue).await, 3);

    let (status, body) = app
        .post("/api/v1/admin/pools/inproc/resume", Some(&admin), json!({}))
        .await;
    assert_eq!(
        (status, body["paused"].clone()),
        (200, json!(false)),
        "{body}"
    );
    for id in &waiting {
        let done = app.wait_status(&ada, id, "completed").await;
        assert_eq!(done["job"]["attempt"], 1);
    }
    worker_reports(&app, &admin, false).await;
}

/// A key under `workers:` that is not a heartbeat (a worker writes its own key and could write
/// any value there) is left out of the admin's list of workers instead of failing it.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_is_not_a_heartbeat_leaves_the_workers_list_whole() {
    use secrecy::ExposeSecret;
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    worker_reports(&app, &admin, false).await;
    let client = redis::Client::open(app.env.config.redis.url.expose_secret()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}workers:intruder", app.env.config.redis.key_prefix);
    redis::cmd("SET")
        .arg(&key)
        .arg("not a heartbeat")
        .query_async::<()>(&mut redis)
        .await
        .unwrap();

    let (status, workers) = app.get("/api/v1/workers", Some(&admin)).await;
    assert_eq!(status, 200, "{workers}");
    let ids: Vec<&str> = workers["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert!(!ids.is_empty() && !ids.contains(&"intruder"), "{workers}");
}
