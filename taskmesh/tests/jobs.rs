//! Automated tasks on the real broker, PostgreSQL and Redis with the in-process worker (pool
//! `inproc`): lifecycle, retries with backoff, dead letters and replay, cancel, timeout,
//! `unique_key`, priority, `run_at`, cron.

mod common;

use chrono::{DateTime, Utc};
use common::jobs::{job_config, queue_depth, time, Effects};
use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::eventually;

#[tokio::test(flavor = "multi_thread")]
async fn a_job_runs_on_its_pool_and_its_run_is_recorded() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = Effects::start(&app).await;

    let task = app
        .create_job(
            &ada,
            "call the endpoint",
            json!({"kind": "http", "pool": "inproc", "payload": effects.job("")}),
        )
        .await;
    assert_eq!(task["status"], "queued");
    assert_eq!(task["job"]["kind"], "http");
    assert_eq!(task["job"]["pool"], "inproc");
    let id = task["id"].as_str().unwrap();

    let done = app.wait_status(&ada, id, "completed").await;
    assert_eq!(done["job"]["result"]["status"], 200);
    assert_eq!(done["job"]["attempt"], 1);
    let attempts = app.attempts(&ada, id).await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["outcome"], "succeeded");
    assert!(attempts[0]["worker_id"].as_str().unwrap().len() > 3);
    assert_eq!(effects.counts().await, (1, 0));

    // Another user sees nothing of it.
    let bob = app.sign_up("bob@example.com").await;
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{id}/attempts"), Some(&bob))
        .await;
    assert_eq!(status, 404);
    let reply = app.cancel(&bob, id).await;
    assert_eq!(reply.status, 404);

    // A person cannot move an automated task's status by hand.
    let reply = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/tasks/{id}"),
            Some(&ada),
            Some(json!({"status": "todo"})),
        )
        .await;
    assert_eq!(reply.status, 409, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_jobs_are_refused_with_the_reason_and_nothing_is_created() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    for (job, needle) in [
        (json!({"kind": "Not A Kind"}), "kind"),
        (json!({"kind": "noop", "pool": "no/slash"}), "pool"),
        (json!({"kind": "noop", "max_attempts": 0}), "max_attempts"),
        (json!({"kind": "noop", "timeout_secs": 0}), "timeout"),
        (json!({"kind": "noop", "cron": "every minute"}), "cron"),
        (
            json!({"kind": "noop", "payload": "x".repeat(70_000)}),
            "payload",
        ),
        (json!({"kind": "noop", "priority": "high"}), "unknown field"),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/tasks",
                Some(&ada),
                json!({"title": "bad", "job": job}),
            )
            .await;
        assert!(status == 422 || status == 400, "{status} {body}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains(needle),
            "{needle}: {body}"
        );
    }
    let (_, list) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_with_growing_delays_then_die_and_replay_succeeds() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let admin = app.admin_token().await;
    let effects = Effects::start(&app).await;
    effects
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let failing = app
        .create_job(
            &ada,
            "flaky",
            json!({"kind": "http", "pool": "inproc", "payload": effects.job(""),
                   "max_attempts": 3, "backoff_base_ms": 300, "backoff_max_ms": 5000}),
        )
        .await;
    let id = failing["id"].as_str().unwrap();
    // Other jobs flow meanwhile.
    let mut others = Vec::new();
    for i in 0..10 {
        let task = app
            .create_job(
                &ada,
                &format!("other {i}"),
                json!({"kind": "noop", "pool": "inproc"}),
            )
            .await;
        others.push(task["id"].as_str().unwrap().to_string());
    }

    let dead = app.wait_status(&ada, id, "dead").await;
    assert!(
        dead["job"]["last_error"].as_str().unwrap().contains("500"),
        "{dead}"
    );
    for other in &others {
        app.wait_status(&ada, other, "completed").await;
    }
    let attempts = app.attempts(&ada, id).await;
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "failed", "failed"], "{attempts:?}");
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    // Backoff 300 ms then 600 ms, each ±25 %: the second gap is the longer floor.
    let gap = |i: usize| {
        (time(&attempts[i]["started_at"]) - time(&attempts[i - 1]["ended_at"])).num_milliseconds()
    };
    assert!(gap(1) >= 225, "first retry after {} ms", gap(1));
    assert!(gap(2) >= 450, "second retry after {} ms", gap(2));

    // Admins see it in the dead list and in the pool's dead-letter queue.
    let (status, _) = app.get("/api/v1/admin/jobs/dead", Some(&ada)).await;
    assert_eq!(status, 403);
    let (status, list) = app
        .get("/api/v1/admin/jobs/dead?pool=inproc", Some(&admin))
        .await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["task_id"], id);
    assert_eq!(items[0]["attempt"], 3);
    let dlq = format!("{}.jobs.inproc.dlq", app.env.config.amqp.namespace);
    eventually("the dead letter reaches the queue", WAIT, || async {
        (queue_depth(&app, &dlq).await == 1).then_some(())
    })
    .await;

    // Fixed: replay it.
    effects
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let reply = app
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/jobs/dead/replay",
            Some(&admin),
            Some(json!({"task_ids": [id]})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["count"], 1);
    let done = app.wait_status(&ada, id, "completed").await;
    assert_eq!(done["job"]["attempt"], 1);
    assert_eq!(effects.counts().await, (1, 0));
    assert_eq!(queue_depth(&app, &dlq).await, 0);
    let (_, list) = app.get("/api/v1/admin/jobs/dead", Some(&admin)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    assert_eq!(app.attempts(&ada, id).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_error_dies_at_once_and_purge_empties_the_dead_list() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let admin = app.admin_token().await;
    // The SSRF guard: a private address not allow-listed fails for good.
    let task = app
        .create_job(
            &ada,
            "metadata",
            json!({"kind": "http", "pool": "inproc", "max_attempts": 5,
                   "payload": {"url": "http://169.254.169.254/latest/meta-data"}}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    let dead = app.wait_status(&ada, id, "dead").await;
    assert!(
        dead["job"]["last_error"]
            .as_str()
            .unwrap()
            .contains("internal address"),
        "{dead}"
    );
    assert_eq!(app.attempts(&ada, id).await.len(), 1);
    // Its owner hears about it.
    eventually("a job_dead notification", WAIT, || async {
        let notes = app.notifications(&ada).await;
        notes
            .iter()
            .any(|n| n["kind"] == "task.dead" && n["subject"] == id)
            .then_some(())
    })
    .await;

    let reply = app
        .send(
            reqwest::Method::DELETE,
            "/api/v1/admin/jobs/dead",
            Some(&admin),
            Some(json!({"pool": "inproc"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["count"], 1);
    let (_, list) = app.get("/api/v1/admin/jobs/dead", Some(&admin)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let dlq = format!("{}.jobs.inproc.dlq", app.env.config.amqp.namespace);
    assert_eq!(queue_depth(&app, &dlq).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_overruns_its_timeout_is_stopped() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let task = app
        .create_job(
            &ada,
            "too slow",
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 60_000},
                   "timeout_secs": 1, "max_attempts": 1}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    let dead = app.wait_status(&ada, id, "dead").await;
    assert!(
        dead["job"]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{dead}"
    );
    let attempts = app.attempts(&ada, id).await;
    assert_eq!(attempts[0]["outcome"], "timed_out");
}

/// An app whose in-process worker has one slot, busy with Ada's two-minute job: the app, Ada's
/// token and that job's task id.
async fn one_slot_busy() -> (App, String, String) {
    let app = App::start_with(|c| {
        job_config(c);
        c.workers.concurrency = 1;
        c.workers.prefetch = 1;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let running = app
        .create_job(
            &ada,
            "long",
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 120_000}}),
        )
        .await;
    let running_id = running["id"].as_str().unwrap().to_string();
    app.wait_status(&ada, &running_id, "running").await;
    (app, ada, running_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_task_stops_its_running_job_and_its_queued_one_never_runs() {
    let (app, ada, running_id) = one_slot_busy().await;
    let running_id = running_id.as_str();
    let effects = Effects::start(&app).await;
    // The only slot is busy: this one waits in the queue, and would call the endpoint.
    let queued = app
        .create_job(
            &ada,
            "waiting",
            json!({"kind": "http", "pool": "inproc", "payload": effects.job("")}),
        )
        .await;
    for id in [queued["id"].as_str().unwrap(), running_id] {
        let reply = app
            .send(
                reqwest::Method::DELETE,
                &format!("/api/v1/tasks/{id}"),
                Some(&ada),
                None,
            )
            .await;
        assert_eq!(reply.status, 204, "{:?}", reply.body);
    }
    // The slot frees long before 120 s, and the deleted queued job never calls its endpoint:
    // work created after runs, and finds nothing of it before.
    let after = app
        .create_job(&ada, "after", json!({"kind": "noop", "pool": "inproc"}))
        .await;
    app.wait_status(&ada, after["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(effects.counts().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_job_and_a_queued_one_never_starts() {
    let (app, ada, running_id) = one_slot_busy().await;
    let running_id = running_id.as_str();
    // The only slot is busy: this one waits in the queue.
    let queued = app
        .create_job(&ada, "waiting", json!({"kind": "noop", "pool": "inproc"}))
        .await;
    let queued_id = queued["id"].as_str().unwrap();

    for id in [queued_id, running_id] {
        let reply = app.cancel(&ada, id).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.body["status"], "cancelled");
    }
    // The running one is told to stop: its run ends as cancelled, long before 120 s.
    let attempts = eventually("the run is recorded cancelled", WAIT, || async {
        let attempts = app.attempts(&ada, running_id).await;
        (attempts.first()?["outcome"] == "cancelled").then_some(attempts)
    })
    .await;
    assert_eq!(attempts.len(), 1);
    // Later work still runs, and the cancelled queued job never did.
    let after = app
        .create_job(&ada, "after", json!({"kind": "noop", "pool": "inproc"}))
        .await;
    app.wait_status(&ada, after["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(app.attempts(&ada, queued_id).await.len(), 0);
    assert_eq!(app.task(&ada, queued_id).await["status"], "cancelled");
    let reply = app.cancel(&ada, queued_id).await;
    assert_eq!(reply.status, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unique_key_returns_the_live_job_instead_of_a_second_one() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    // No worker serves this pool yet: the first job stays live.
    let job = json!({"kind": "noop", "pool": "later", "unique_key": "report-2026-11"});
    let first = app.create_job(&ada, "report", job.clone()).await;
    let (status, second) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "report again", "job": job}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["id"], first["id"]);
    // Another user's key space is their own.
    let bob = app.sign_up("bob@example.com").await;
    let (status, _) = app
        .post(
            "/api/v1/tasks",
            Some(&bob),
            json!({"title": "report", "job": job}),
        )
        .await;
    assert_eq!(status, 201);
    // Once the first has ended, the key is free again.
    let id = first["id"].as_str().unwrap();
    let reply = app.cancel(&ada, id).await;
    assert_eq!(reply.status, 200);
    let (status, third) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "report", "job": job}),
        )
        .await;
    assert_eq!(status, 201);
    assert_ne!(third["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_urgent_job_overtakes_a_backlog_of_low_ones() {
    urgent_overtakes_low(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_urgent_job_overtakes_low_ones_the_worker_already_holds() {
    // The worker holds the whole backlog (prefetch above it): it starts held jobs in priority
    // order, not in the order they arrived.
    urgent_overtakes_low(30).await;
}

async fn urgent_overtakes_low(prefetch: u16) {
    let app = App::start_with(|c| {
        job_config(c);
        c.workers.concurrency = 1;
        c.workers.prefetch = prefetch;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    // The twenty low jobs and then the urgent one, committed together: the backlog exists when
    // the urgent one arrives however slow the machine is (created one by one, a loaded machine
    // ran half the backlog before the urgent one was even created).
    let mut tasks: Vec<Value> = (0..20)
        .map(|i| {
            json!({"title": format!("low {i}"), "priority": "low",
                   "job": {"kind": "sleep", "pool": "inproc", "payload": {"ms": 100}}})
        })
        .collect();
    tasks.push(json!({"title": "urgent", "priority": "urgent",
                      "job": {"kind": "sleep", "pool": "inproc", "payload": {"ms": 100}}}));
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    let (low, urgent_id) = (&ids[..20], &ids[20]);
    let urgent_done = app.wait_status(&ada, urgent_id, "completed").await;
    let urgent_start = time(&urgent_done["job"]["started_at"]);
    let mut after = 0;
    for id in low {
        let task = app.wait_status(&ada, id, "completed").await;
        if time(&task["job"]["started_at"]) > urgent_start {
            after += 1;
        }
    }
    // The first low job may be taken before the urgent one reaches the queue (or the worker),
    // and with it one more at most; every other one waits for the urgent one.
    assert!(
        after >= 18,
        "only {after} of 20 low jobs started after the urgent one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_at_holds_a_job_until_its_time() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let run_at = Utc::now() + chrono::Duration::seconds(2);
    let task = app
        .create_job(
            &ada,
            "later",
            json!({"kind": "noop", "pool": "inproc", "run_at": run_at}),
        )
        .await;
    assert_eq!(task["status"], "scheduled");
    let id = task["id"].as_str().unwrap();
    let done = app.wait_status(&ada, id, "completed").await;
    let started = time(&done["job"]["started_at"]);
    assert!(started >= run_at, "started {started} before {run_at}");
    // Promptly: the relay wakes for the row's available_at, not at its next poll.
    let late = (started - run_at).num_milliseconds();
    assert!(late < 1500, "started {late} ms after run_at");
}

#[tokio::test(flavor = "multi_thread")]
async fn cron_creates_one_run_per_tick_even_with_two_schedulers() {
    // A tick a second, which members may schedule here (the default floor is a minute).
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.member_min_cron_interval_secs = 1;
    })
    .await;
    // A second task-svc on the same database races the first for every tick.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = tokio::spawn(task_svc::run(
        app.env.config.clone(),
        listener,
        shutdown.clone(),
    ));
    let ada = app.sign_up("ada@example.com").await;
    let template = app
        .create_job(
            &ada,
            "every second",
            json!({"kind": "noop", "pool": "inproc", "cron": "* * * * * *"}),
        )
        .await;
    assert_eq!(template["status"], "scheduled");
    let template_id = template["id"].as_str().unwrap();
    let db = app.db(&app.env.config.task.database).await;
    eventually("five runs", WAIT, || async {
        let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE parent_id = $1")
            .bind(uuid::Uuid::parse_str(template_id).unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
        (runs >= 5).then_some(())
    })
    .await;
    let reply = app.cancel(&ada, template_id).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let ticks: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT scheduled_for, count(*) FROM jobs WHERE parent_id = $1
          GROUP BY scheduled_for ORDER BY scheduled_for",
    )
    .bind(uuid::Uuid::parse_str(template_id).unwrap())
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(ticks.len() >= 5);
    assert!(ticks.iter().all(|(_, n)| *n == 1), "{ticks:?}");
    for pair in ticks.windows(2) {
        assert_eq!((pair[1].0 - pair[0].0).num_seconds(), 1, "{ticks:?}");
    }
    // Each run is a task of its own that completes.
    let run: String = sqlx::query_scalar(
        "SELECT task_id::text FROM jobs WHERE parent_id = $1 ORDER BY scheduled_for LIMIT 1",
    )
    .bind(uuid::Uuid::parse_str(template_id).unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    app.wait_status(&ada, &run, "completed").await;
    shutdown.cancel();
    second.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cron_run_shows_in_a_cached_task_list_at_once() {
    // Found in review: a run created by cron did not invalidate the cached first page of task
    // lists, so it was missing from "my tasks" for up to `tasks.list_cache_secs`.
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.member_min_cron_interval_secs = 1;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    // No worker serves `later`: its runs stay queued, so only their creation changes the list.
    let template = app
        .create_job(
            &ada,
            "every second",
            json!({"kind": "noop", "pool": "later", "cron": "* * * * * *"}),
        )
        .await;
    let template_id = template["id"].as_str().unwrap().to_string();
    let listed = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    // The plain first page, read once: now it is cached.
    let (status, first) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(status, 200, "{first}");
    let seen = listed(&first);
    let db = app.db(&app.env.config.task.database).await;
    let run: String = eventually("a run the cached page lacks", WAIT, || async {
        let runs: Vec<String> =
            sqlx::query_scalar("SELECT task_id::text FROM jobs WHERE parent_id = $1::uuid")
                .bind(&template_id)
                .fetch_all(&db)
                .await
                .unwrap();
        runs.into_iter().find(|id| !seen.contains(id))
    })
    .await;
    let (status, second) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(status, 200, "{second}");
    assert!(
        listed(&second).contains(&run),
        "the run {run} is missing from the list: {second}"
    );
    let reply = app.cancel(&ada, &template_id).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bulk_path_creates_all_or_nothing() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let job = json!({"kind": "noop", "pool": "inproc"});
    let (status, body) = app
        .post(
            "/api/v1/tasks/bulk",
            Some(&ada),
            json!({"tasks": [
                {"title": "one", "job": job},
                {"title": "two", "job": {"kind": "noop", "max_attempts": 1000}},
                {"title": "three", "job": job},
            ]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("tasks[1]"),
        "{body}"
    );
    let (_, list) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);

    let tasks: Vec<Value> = (0..50)
        .map(|i| json!({"title": format!("bulk {i}"), "priority": "low", "job": job}))
        .collect();
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 50);
    let ids = body["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 50);
    for id in ids {
        app.wait_status(&ada, id.as_str().unwrap(), "completed")
            .await;
    }
    let (status, _) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": [] }))
        .await;
    assert_eq!(status, 422);

    // A mix in one request: people's tasks with tags and an assignee, jobs, and two jobs with
    // the same live unique_key (the second gets the first's id).
    let bob = app.sign_up("bob@example.com").await;
    let (_, me) = app.get("/api/v1/users/me", Some(&bob)).await;
    let bob_id = me["id"].as_str().unwrap().to_string();
    let keyed = json!({"kind": "noop", "pool": "inproc", "run_at": "2099-01-01T00:00:00Z",
                       "unique_key": "nightly"});
    let (status, body) = app
        .post(
            "/api/v1/tasks/bulk",
            Some(&ada),
            json!({"tasks": [
                {"title": "person", "tags": ["a", "b"], "assignee_id": bob_id, "priority": "high"},
                {"title": "keyed one", "job": keyed},
                {"title": "keyed two", "job": keyed},
                {"title": "plain", "description": "no priority given"},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], 3, "{body}");
    let ids: Vec<&str> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        ids[1], ids[2],
        "the same live unique_key gives the same task"
    );
    let (_, person) = app
        .get(&format!("/api/v1/tasks/{}", ids[0]), Some(&ada))
        .await;
    assert_eq!(person["tags"], json!(["a", "b"]));
    assert_eq!(person["assignee_id"], json!(bob_id));
    assert_eq!(person["priority"], "high");
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{}", ids[0]), Some(&bob))
        .await;
    assert_eq!(status, 200, "the assignee sees it");
    let (_, plain) = app
        .get(&format!("/api/v1/tasks/{}", ids[3]), Some(&ada))
        .await;
    assert_eq!(plain["priority_source"], "heuristic");
    let (_, keyed_task) = app
        .get(&format!("/api/v1/tasks/{}", ids[1]), Some(&ada))
        .await;
    assert_eq!(keyed_task["job"]["unique_key"], "nightly");

    // A check that needs the database (an unknown assignee) also names the task and creates
    // nothing.
    let (_, before) = app.get("/api/v1/tasks?limit=100", Some(&ada)).await;
    let (status, body) = app
        .post(
            "/api/v1/tasks/bulk",
            Some(&ada),
            json!({"tasks": [
                {"title": "fine", "job": job},
                {"title": "nobody", "assignee_id": uuid::Uuid::now_v7()},
            ]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "unknown_assignee", "{body}");
    assert!(
        body["detail"].as_str().unwrap().starts_with("tasks[1]"),
        "{body}"
    );
    let (_, after) = app.get("/api/v1/tasks?limit=100", Some(&ada)).await;
    assert_eq!(
        before["items"].as_array().unwrap().len(),
        after["items"].as_array().unwrap().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_kind_runs_only_the_operators_commands_for_whom_an_admin_allowed() {
    let app = App::start_with(|c| {
        job_config(c);
        c.workers.commands =
            common::jobs::commands(&[("echo", "/bin/echo", &["{words}", "and", "{more}"])]);
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let admin = app.admin_token().await;
    let echo = |params: Value| {
        json!({"title": "echo", "job": {"kind": "command", "pool": "inproc", "max_attempts": 3,
            "payload": {"command": "echo", "params": params}}})
    };
    let hello = echo(json!({"words": "hello $(id) ; ls", "more": "x"}));

    // A member in a pool without a grant: 403, nothing created.
    let (status, body) = app.post("/api/v1/tasks", Some(&ada), hello.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert!(
        body["detail"].as_str().unwrap().contains("/commands/grant"),
        "{body}"
    );
    let (_, mine) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0, "{mine}");
    // Granting is an admin's.
    let grant = "/api/v1/admin/pools/inproc/commands/grant";
    let (status, _) = app.post(grant, Some(&ada), json!({})).await;
    assert_eq!(status, 403);
    app.grant_commands("inproc").await;

    // Values reach the program in their placeholders, as given: no shell expands or chains them.
    let (status, task) = app.post("/api/v1/tasks", Some(&ada), hello).await;
    assert_eq!(status, 201, "{task}");
    let done = app
        .wait_status(&ada, task["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(done["job"]["result"]["stdout"], "hello $(id) ; ls and x\n");
    assert_eq!(done["job"]["result"]["exit_code"], 0);

    // A payload that chooses a program, an argument or an option is refused: 422.
    for bad in [
        json!({"title": "sh", "job": {"kind": "command", "pool": "inproc",
            "payload": {"program": "/bin/sh", "args": ["-c", "true"]}}}),
        echo(json!({"words": "--help", "more": "x"})),
        echo(json!({"words": "a\nb", "more": "x"})),
    ] {
        let (status, body) = app.post("/api/v1/tasks", Some(&ada), bad).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "invalid_job", "{body}");
    }
    // A command the worker does not have, a parameter its template does not: dead at once.
    for (payload, why) in [
        (json!({"command": "sh"}), "not in workers.commands"),
        (
            json!({"command": "echo", "params": {"words": "a", "more": "b", "exec": "c"}}),
            "params.exec is not a parameter",
        ),
    ] {
        let job = json!({"title": "no", "job": {"kind": "command", "pool": "inproc",
            "max_attempts": 3, "payload": payload}});
        let (status, task) = app.post("/api/v1/tasks", Some(&ada), job).await;
        assert_eq!(status, 201, "{task}");
        let dead = app
            .wait_status(&ada, task["id"].as_str().unwrap(), "dead")
            .await;
        assert!(
            dead["job"]["last_error"].as_str().unwrap().contains(why),
            "{dead}"
        );
        assert_eq!(dead["job"]["attempt"], 1);
    }

    // Taken back: 403 again for the member; an admin still may.
    let (status, body) = app
        .post(
            "/api/v1/admin/pools/inproc/commands/revoke",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["granted"].clone()),
        (200, json!(false)),
        "{body}"
    );
    let again = echo(json!({"words": "a", "more": "b"}));
    let (status, _) = app.post("/api/v1/tasks", Some(&ada), again.clone()).await;
    assert_eq!(status, 403);
    let (status, _) = app.post("/api/v1/tasks", Some(&admin), again).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_shows_its_progress() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let task = app
        .create_job(
            &ada,
            "slow",
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 4000}}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    let percent = eventually("progress is reported", WAIT, || async {
        let task = app.task(&ada, id).await;
        let percent = task["job"]["progress"]["percent"].as_f64()?;
        (task["status"] == "running" && percent > 0.0).then_some(percent)
    })
    .await;
    assert!(percent < 100.0);
    let done = app.wait_status(&ada, id, "completed").await;
    assert_eq!(done["job"]["result"]["slept_ms"], 4000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_runs_keep_dying_with_their_workers_is_dead_lettered() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    // No worker serves this pool: the test plays the workers that die one after another.
    let task = app
        .create_job(&ada, "poison", json!({"kind": "noop", "pool": "ghost"}))
        .await;
    let id = task["id"].as_str().unwrap();
    let dispatch = app.dispatch_id(id).await;
    // Six runs start and never finish: each new one finds the previous lost.
    for n in 0..6 {
        let started = shared::events::JobStarted {
            task_id: uuid::Uuid::parse_str(id).unwrap(),
            dispatch_id: dispatch,
            run_id: uuid::Uuid::now_v7(),
            worker_id: format!("doomed-{n}"),
            attempt: 1,
            started_at: Utc::now(),
        };
        app.publish_as_worker(&shared::events::CloudEvent::new("test", started))
            .await;
        eventually("the run is recorded", WAIT, || async {
            let runs = app.attempts(&ada, id).await.len();
            (runs > n).then_some(())
        })
        .await;
    }
    let dead = app.wait_status(&ada, id, "dead").await;
    assert!(
        dead["job"]["last_error"].as_str().unwrap().contains("lost"),
        "{dead}"
    );
    let lost = app
        .attempts(&ada, id)
        .await
        .iter()
        .filter(|a| a["outcome"] == "lost")
        .count();
    assert_eq!(lost, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_reports_is_applied_report_by_report_and_once() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    // No worker serves this pool: the test plays a busy worker that reports in one message.
    let db = app.db(&app.env.config.task.database).await;
    let mut reports = Vec::new();
    let mut ids = Vec::new();
    for (n, outcome) in [
        shared::events::JobOutcome::Succeeded,
        shared::events::JobOutcome::Succeeded,
        shared::events::JobOutcome::Failed,
        shared::events::JobOutcome::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        let task = app
            .create_job(
                &ada,
                &format!("batched {n}"),
                json!({"kind": "noop", "pool": "busy", "max_attempts": 1}),
            )
            .await;
        let id = task["id"].as_str().unwrap();
        ids.push(id.to_string());
        reports.push(shared::events::JobFinished {
            task_id: uuid::Uuid::parse_str(id).unwrap(),
            dispatch_id: app.dispatch_id(id).await,
            run_id: uuid::Uuid::now_v7(),
            worker_id: "busy-1".into(),
            attempt: 1,
            outcome,
            result: Some(json!({"n": n})),
            error: (outcome != shared::events::JobOutcome::Succeeded).then(|| "boom".into()),
            retryable: true,
            started_at: Utc::now(),
            ended_at: Utc::now(),
        });
    }
    let last = reports.pop().unwrap();
    let batch = shared::events::CloudEvent::new(
        "test",
        shared::events::JobsFinished {
            reports,
            traceparents: Vec::new(),
        },
    );
    // Delivered twice (a redelivery), then one lone report: once that one is applied, so are
    // both copies (one consumer takes the queue in order).
    app.publish_as_worker(&batch).await;
    app.publish_as_worker(&batch).await;
    app.publish_as_worker(&shared::events::CloudEvent::new("test", last))
        .await;
    app.wait_status(&ada, &ids[3], "completed").await;
    let first = app.wait_status(&ada, &ids[0], "completed").await;
    assert_eq!(first["job"]["result"], json!({"n": 0}));
    app.wait_status(&ada, &ids[1], "completed").await;
    let failed = app.wait_status(&ada, &ids[2], "dead").await;
    assert_eq!(failed["job"]["last_error"], "boom");
    for id in &ids {
        assert_eq!(
            app.attempts(&ada, id).await.len(),
            1,
            "one run recorded for {id}"
        );
    }
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_messages WHERE routing_key = 'task.completed'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(completed, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_trace_runs_from_the_request_to_its_completion() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = app
        .http
        .post(format!("{}/api/v1/tasks", app.api))
        .bearer_auth(&ada)
        .header("traceparent", traceparent)
        .json(&json!({"title": "traced job", "job": {"kind": "noop", "pool": "inproc"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let task: Value = response.json().await.unwrap();
    app.wait_status(&ada, task["id"].as_str().unwrap(), "completed")
        .await;
    // The dispatch, the worker's report and task-svc's task.completed all carry it.
    let db = app.db(&app.env.config.task.database).await;
    let carried: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT routing_key, payload->>'traceparent' FROM outbox_messages
          WHERE routing_key IN ('job.dispatch.inproc', 'task.completed') ORDER BY seq, position",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(carried.len(), 2, "{carried:?}");
    for (key, value) in &carried {
        assert_eq!(value.as_deref(), Some(traceparent), "{key}");
    }
}

/// How many runs template `id` made, and how many for ticks after `after`.
async fn runs_of(db: &sqlx::PgPool, id: &str, after: DateTime<Utc>) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE scheduled_for > $2) FROM jobs WHERE parent_id = $1",
    )
    .bind(uuid::Uuid::parse_str(id).unwrap())
    .bind(after)
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_pauses_resumes_and_runs_a_cron_template_and_a_member_may_not() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.member_min_cron_interval_secs = 1;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let admin = app.sign_up_verified_as(common::jobs::ADMIN, "Grace").await;
    let every_second = json!({"kind": "noop", "pool": "inproc", "cron": "* * * * * *"});
    let paused = app.create_job(&ada, "paused", every_second.clone()).await;
    let witness = app.create_job(&ada, "witness", every_second).await;
    let (paused, witness) = (
        paused["id"].as_str().unwrap(),
        witness["id"].as_str().unwrap(),
    );
    let path = |action: &str| format!("/api/v1/admin/cron/{paused}/{action}");
    // A member sees none of it.
    assert_eq!(app.get("/api/v1/admin/cron", Some(&ada)).await.0, 403);
    assert_eq!(app.post(&path("pause"), Some(&ada), json!({})).await.0, 403);
    let (status, list) = app.get("/api/v1/admin/cron", Some(&admin)).await;
    assert_eq!(status, 200, "{list}");
    let listed = |list: &Value, id: &str| -> Value {
        let items = list["items"].as_array().unwrap();
        items.iter().find(|t| t["task_id"] == id).cloned().unwrap()
    };
    let shown = listed(&list, paused);
    assert_eq!(
        (
            shown["cron"].as_str(),
            shown["next_ticks"].as_array().map(Vec::len)
        ),
        (Some("* * * * * *"), Some(3))
    );
    // Paused: the witness keeps running two more ticks, the paused one runs none.
    let (status, shown) = app.post(&path("pause"), Some(&admin), json!({})).await;
    assert_eq!(status, 200, "{shown}");
    assert!(
        shown["paused_at"].is_string() && shown["next_ticks"] == json!([]),
        "{shown}"
    );
    let db = app.db(&app.env.config.task.database).await;
    let at_pause = Utc::now();
    let (made, _) = runs_of(&db, paused, at_pause).await;
    eventually("two witness ticks after the pause", WAIT, || async {
        (runs_of(&db, witness, at_pause).await.1 >= 2).then_some(())
    })
    .await;
    assert_eq!(runs_of(&db, paused, at_pause).await, (made, 0));
    // Resumed: it runs again, from now on.
    let resumed_at = Utc::now();
    let (status, shown) = app.post(&path("resume"), Some(&admin), json!({})).await;
    assert_eq!(
        (status, shown["paused_at"].is_null()),
        (200, true),
        "{shown}"
    );
    eventually("a tick after the resume", WAIT, || async {
        (runs_of(&db, paused, resumed_at).await.1 >= 1).then_some(())
    })
    .await;
    // Run now: one run at once, which completes.
    let (status, run) = app.post(&path("run"), Some(&admin), json!({})).await;
    assert_eq!(status, 202, "{run}");
    app.wait_status(&ada, run["id"].as_str().unwrap(), "completed")
        .await;
    let (_, list) = app.get("/api/v1/admin/cron", Some(&admin)).await;
    assert!(!listed(&list, paused)["last_runs"]
        .as_array()
        .unwrap()
        .is_empty());
    let missing = format!("/api/v1/admin/cron/{}/pause", uuid::Uuid::now_v7());
    assert_eq!(app.post(&missing, Some(&admin), json!({})).await.0, 404);
}
