//! Trust and the job engine (issue 13): no member can exhaust it, a job cannot speak for the
//! platform, a command cannot outlive or flood its worker, and a user who is gone stops.

mod common;

use common::jobs::job_config;
use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::eventually;

/// POSTs a task with `job`; returns the status and body.
async fn try_job(app: &App, token: &str, job: Value) -> (u16, Value) {
    app.post(
        "/api/v1/tasks",
        Some(token),
        json!({ "title": "job", "job": job }),
    )
    .await
}

async fn jobs_of(app: &App, token: &str) -> i64 {
    let user = app.user_id(token).await;
    let db = app.db(&app.env.config.task.database).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE owner_id = $1::uuid")
        .bind(&user)
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_cannot_exhaust_the_job_engine() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.member_max_cron_templates = 3;
        c.jobs.member_max_live_jobs = 4;
    })
    .await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;

    // Finding 5: crons every second, and a thousand of them in one request.
    for cron in ["* * * * * *", "*/30 * * * * *", "0-5 * * * * *"] {
        let (status, body) = try_job(&app, &ada, json!({"kind": "noop", "cron": cron})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("cron_too_frequent")),
            "{cron}"
        );
    }
    let thousand: Vec<Value> = (0..1000)
        .map(|i| json!({"title": format!("t{i}"), "job": {"kind": "noop", "cron": "* * * * *"}}))
        .collect();
    let (status, body) = app
        .post(
            "/api/v1/tasks/bulk",
            Some(&ada),
            json!({ "tasks": thousand }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
    assert_eq!(
        jobs_of(&app, &ada).await,
        0,
        "nothing of the bulk request was created"
    );
    // Once a year (1 January, 00:00): a template that fires while the test runs would add a
    // live run and fill the quota of live jobs below before its time (seen in CI at 16:45:00).
    for _ in 0..3 {
        let (status, body) =
            try_job(&app, &ada, json!({"kind": "noop", "cron": "0 0 1 1 *"})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = try_job(&app, &ada, json!({"kind": "noop", "cron": "*/5 * * * *"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
    // An admin is bound by the engine's limits only.
    let (status, body) =
        try_job(&app, &admin, json!({"kind": "noop", "cron": "* * * * * *"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app
        .post(
            &format!("/api/v1/tasks/{}/cancel", body["id"].as_str().unwrap()),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);

    // Pools: a member names configured ones, or ones an admin opened.
    let (status, body) = try_job(&app, &ada, json!({"kind": "noop", "pool": "mine-1"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unknown_pool")),
        "{body}"
    );
    let (status, _) = try_job(&app, &admin, json!({"kind": "noop", "pool": "opened"})).await;
    assert_eq!(status, 201);
    let (status, body) = try_job(&app, &ada, json!({"kind": "noop", "pool": "opened"})).await;
    assert_eq!(status, 201, "{body}");

    // Day-long sleeps and timeouts.
    let day_sleep = json!({"kind": "sleep", "pool": "later", "payload": {"ms": 86_400_000}});
    let (status, body) = try_job(&app, &ada, day_sleep.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_job")),
        "{body}"
    );
    let day_timeout = json!({"kind": "noop", "pool": "later", "timeout_secs": 86_400});
    let (status, body) = try_job(&app, &ada, day_timeout.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_job")),
        "{body}"
    );
    assert_eq!(try_job(&app, &admin, day_sleep).await.0, 201);
    assert_eq!(try_job(&app, &admin, day_timeout).await.0, 201);

    // Live jobs: `opened` above is one (no worker serves it); three more on `later` fill the
    // quota of 4, the fifth is refused.
    for _ in 0..3 {
        let (status, body) = try_job(&app, &ada, json!({"kind": "noop", "pool": "later"})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = try_job(&app, &ada, json!({"kind": "noop", "pool": "later"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_cannot_speak_for_the_platform() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    // Finding 3: internal, Host and hop-by-hop headers are refused when the job is created.
    for name in [
        "x-taskmesh-user-id",
        "X-Taskmesh-Assertion",
        "Host",
        "Connection",
        "Transfer-Encoding",
    ] {
        let job = json!({"kind": "http", "pool": "inproc",
            "payload": {"url": "http://127.0.0.1:9/", "headers": { name: "x" }}});
        let (status, body) = try_job(&app, &ada, job).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid_job")),
            "{name}: {body}"
        );
    }
    // And a service on the workers' allow-list answers a job's request with 401: the worker
    // holds no credential a service accepts.
    let task_svc = app.stack.as_ref().unwrap().config.task.url.clone();
    let job = json!({"kind": "http", "pool": "inproc", "max_attempts": 1,
        "payload": {"url": format!("{task_svc}/api/v1/tasks"), "headers": {"x-custom": "1"}}});
    let (status, task) = try_job(&app, &ada, job).await;
    assert_eq!(status, 201, "{task}");
    let dead = app
        .wait_status(&ada, task["id"].as_str().unwrap(), "dead")
        .await;
    let error = dead["job"]["last_error"].as_str().unwrap();
    assert!(error.contains("401"), "{error}");
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn pid_in(file: &std::path::Path) -> u32 {
    eventually("the program to write its child's pid", WAIT, || async {
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_is_capped_while_it_streams_and_nothing_it_starts_outlives_it() {
    let app = App::start_with(|c| {
        job_config(c);
        c.workers.commands = common::jobs::commands(&[("sh", "/bin/sh", &["-c", "{script}"])]);
        c.workers.http_max_response_bytes = 1000;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    app.grant_commands("inproc").await;
    let dir = tempfile_dir(&app);
    let sh = |script: String, extra: Value| {
        let mut job = json!({"kind": "command", "pool": "inproc", "max_attempts": 1,
            "payload": {"command": "sh", "params": {"script": script}}});
        job.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        job
    };

    // Finding 8: 50 MB of output; the result keeps 1,000 bytes of it.
    let flood = sh(
        "head -c 50000000 /dev/zero | tr '\\0' a; echo done >&2".into(),
        json!({}),
    );
    let (_, task) = try_job(&app, &ada, flood).await;
    let done = app
        .wait_status(&ada, task["id"].as_str().unwrap(), "completed")
        .await;
    let result = &done["job"]["result"];
    assert_eq!(result["stdout"].as_str().unwrap().len(), 1000, "{result}");
    assert_eq!(result["truncated"], true);
    assert_eq!(result["stderr"], "done\n");

    // A timeout ends what the program started, not only the program.
    let pid_file = dir.join("timeout.pid");
    let script = format!("sleep 600 & echo $! > {}; wait", pid_file.display());
    let (_, task) = try_job(&app, &ada, sh(script, json!({"timeout_secs": 2}))).await;
    let child = pid_in(&pid_file).await;
    app.wait_status(&ada, task["id"].as_str().unwrap(), "dead")
        .await;
    eventually("the timed-out command's child to end", WAIT, || async {
        ended(child).then_some(())
    })
    .await;

    // A program that exits and leaves a child behind: the job completes, and the child ends.
    let pid_file = dir.join("left.pid");
    let script = format!("sleep 600 & echo $! > {}; echo bye", pid_file.display());
    let (_, task) = try_job(&app, &ada, sh(script, json!({"timeout_secs": 60}))).await;
    let done = app
        .wait_status(&ada, task["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(done["job"]["result"]["stdout"], "bye\n");
    let child = pid_in(&pid_file).await;
    eventually("the left-behind child to end", WAIT, || async {
        ended(child).then_some(())
    })
    .await;
}

/// Python connecting to the port it is given, printing `connected`.
const CONNECT: &str = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3); print('connected')";

/// Runs a command connecting to the machine's Redis on a platform whose commands have
/// `network`; returns the task once its job ended (`status`).
async fn connect_to_redis(network: shared::config::CommandNetwork, status: &str) -> Value {
    let app = App::start_with(move |c| {
        job_config(c);
        c.workers.commands =
            common::jobs::commands(&[("connect", "/usr/bin/python3", &["-c", CONNECT, "{port}"])]);
        c.workers.command_network = network;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    app.grant_commands("inproc").await;
    let job = json!({"kind": "command", "pool": "inproc", "max_attempts": 1,
        "payload": {"command": "connect", "params": {"port": "6379"}}});
    let (created, task) = try_job(&app, &ada, job).await;
    assert_eq!(created, 201, "{task}");
    app.wait_status(&ada, task["id"].as_str().unwrap(), status)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_reaches_no_network_unless_the_operator_shares_it() {
    // By default the program has a network of its own: the platform's Redis is not there.
    let dead = connect_to_redis(shared::config::CommandNetwork::None, "dead").await;
    let error = dead["job"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("unreachable") || error.contains("refused"),
        "{error}"
    );
    // The same command with the worker's network, as an operator may choose: it connects.
    let done = connect_to_redis(shared::config::CommandNetwork::Shared, "completed").await;
    assert_eq!(done["job"]["result"]["stdout"], "connected\n");
}

/// A folder of this test's own.
fn tempfile_dir(app: &App) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("taskmesh-test-{}-cmd", app.env.id));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn status_in_db(app: &App, id: &str) -> String {
    let db = app.db(&app.env.config.task.database).await;
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_is_gone_stops_and_a_removed_member_stops_posting() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;

    // Finding 9, channels: Bob's cron posts into Ada's channel until she removes him.
    let (_, channel) = app
        .post("/api/v1/channels", Some(&ada), json!({ "name": "ops" }))
        .await;
    let (status, _) = app
        .post(
            "/api/v1/channels/join",
            Some(&bob),
            json!({ "code": channel["join_code"] }),
        )
        .await;
    assert_eq!(status, 200);
    let channel_id = channel["id"].as_str().unwrap();
    let (status, in_channel) = app
        .post(
            "/api/v1/tasks",
            Some(&bob),
            json!({"title": "report", "channel_id": channel_id,
                   "job": {"kind": "noop", "cron": "0 9 * * *"}}),
        )
        .await;
    assert_eq!(status, 201, "{in_channel}");
    let (_, elsewhere) = try_job(&app, &bob, json!({"kind": "noop", "cron": "0 9 * * *"})).await;
    let bob_id = app.user_id(&bob).await;
    let removed = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/channels/{channel_id}/members/{bob_id}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(removed.status, 204, "{:?}", removed.body);
    let in_channel_id = in_channel["id"].as_str().unwrap();
    assert_eq!(status_in_db(&app, in_channel_id).await, "cancelled");
    let elsewhere_id = elsewhere["id"].as_str().unwrap();
    assert_eq!(status_in_db(&app, elsewhere_id).await, "scheduled");

    // Deactivation: Bob's other template and a job waiting on a pool nobody serves stop.
    let (_, waiting) = try_job(&app, &bob, json!({"kind": "noop", "pool": "later"})).await;
    let waiting_id = waiting["id"].as_str().unwrap().to_string();
    assert_eq!(status_in_db(&app, &waiting_id).await, "queued");
    let deactivated = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(deactivated.status, 200, "{:?}", deactivated.body);
    for id in [elsewhere_id.to_string(), waiting_id] {
        eventually("a deactivated user's job to stop", WAIT, || async {
            (status_in_db(&app, &id).await == "cancelled").then_some(())
        })
        .await;
    }

    // Deletion: Ada's template stops with her.
    let (_, hers) = try_job(&app, &ada, json!({"kind": "noop", "cron": "0 9 * * *"})).await;
    let ada_id = app.user_id(&ada).await;
    let reply = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/users/{ada_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    let hers = hers["id"].as_str().unwrap().to_string();
    eventually("a deleted user's template to stop", WAIT, || async {
        (status_in_db(&app, &hers).await == "cancelled").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cron_template_stops_adding_runs_once_its_owner_is_at_the_quota() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.member_min_cron_interval_secs = 1;
        c.jobs.member_max_live_jobs = 2;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    // Every second, on a pool no worker serves: its runs wait, and pile up unless bounded.
    let (status, template) = try_job(
        &app,
        &ada,
        json!({"kind": "noop", "pool": "later", "cron": "* * * * * *"}),
    )
    .await;
    assert_eq!(status, 201, "{template}");
    let task_svc = app.stack.as_ref().unwrap().config.task.url.clone();
    eventually("two ticks skipped at the quota", WAIT, || async {
        app.metric(&task_svc, "taskmesh_cron_ticks_skipped_total", "")
            .await
            .filter(|n| *n >= 2.0)
    })
    .await;
    let db = app.db(&app.env.config.task.database).await;
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE parent_id = $1::uuid")
        .bind(template["id"].as_str().unwrap())
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert_eq!(runs, 2, "the runs stopped at the quota of live jobs");
}

/// A platform whose worker (as its own Redis and RabbitMQ users) ran a job to the end: claim,
/// heartbeats, pauses read, reports.
async fn app_whose_worker_ran_a_job() -> App {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let task = app
        .create_job(&ada, "noop", json!({"kind": "noop", "pool": "inproc"}))
        .await;
    app.wait_status(&ada, task["id"].as_str().unwrap(), "completed")
        .await;
    app
}

/// Issue 26, finding 7: the workers' own Redis user (what `taskmesh worker-acl` prints, as every
/// test's worker runs) reaches their heartbeats and the job keys, and none of the keys the
/// services trust: before, workers held the services' credentials and could write a session or
/// a stream ticket the gateway believes.
#[tokio::test(flavor = "multi_thread")]
async fn the_workers_redis_user_reaches_only_the_job_keys() {
    use secrecy::ExposeSecret;
    let app = app_whose_worker_ran_a_job().await;

    let p = &app.env.config.redis.key_prefix;
    let client = redis::Client::open(app.env.worker_redis_url().expose_secret()).unwrap();
    let mut worker = client.get_multiplexed_async_connection().await.unwrap();
    let nil = uuid::Uuid::nil();
    let attempts = [
        ("read a session", format!("GET {p}session:{nil}")),
        ("write a session", format!("SET {p}session:{nil} u")),
        (
            "write a stream ticket",
            format!("SET {p}stream:ticket:x {{}}"),
        ),
        ("reset a rate limit", format!("DEL {p}ratelimit:api:x")),
        (
            "read an idempotency record",
            format!("GET {p}idempotency:x"),
        ),
        ("unpause a pool", format!("SET {p}pools:paused []")),
        ("end sessions", format!("PUBLISH {p}sessions:ended {nil}")),
        ("list keys", "SCAN 0".to_string()),
        (
            "another prefix's jobs",
            format!("GET taskmesh:jobs:dispatch:{nil}"),
        ),
        ("flush", "FLUSHALL".to_string()),
    ];
    for (what, words) in attempts {
        let mut words = words.split(' ');
        let mut command = redis::cmd(words.next().unwrap());
        command.arg(words.collect::<Vec<_>>());
        let answer: redis::RedisResult<redis::Value> = command.query_async(&mut worker).await;
        assert!(
            matches!(&answer, Err(err) if err.code() == Some("NOPERM")),
            "{what}: {answer:?}"
        );
    }
    // What workers do is allowed.
    let _: Option<String> = redis::cmd("GET")
        .arg(format!("{p}pools:paused"))
        .query_async(&mut worker)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{p}jobs:dispatch:{}", uuid::Uuid::nil()))
        .arg("run:x")
        .arg("PX")
        .arg(1000)
        .query_async(&mut worker)
        .await
        .unwrap();
}

/// Issue 26, finding 7: the workers' own RabbitMQ user (as every test's worker runs) consumes
/// the job queues and its control queue and publishes its reports, and nothing else: before,
/// workers held the services' user and could publish any event (a task's, a user's, a
/// dispatch) or drain a service's queue.
#[tokio::test(flavor = "multi_thread")]
async fn the_workers_rabbitmq_user_reaches_only_the_job_path() {
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use shared::broker::{Broker, OutgoingMessage, Publisher};
    let app = app_whose_worker_ran_a_job().await;

    let mut amqp = app.env.config.amqp.clone();
    amqp.url = app.env.worker_amqp_url();
    let worker = Broker::new(&amqp, "test-worker-credentials");
    let events = worker.events_exchange();
    // Publishing anything but a job's report is refused (its channel closed: no confirm).
    let publisher = Publisher::new(worker.clone());
    for key in [
        "task.created",
        "job.dispatch.inproc",
        "user.deactivated",
        "job.cancel",
    ] {
        let forged = OutgoingMessage::new(&events, key, b"{}".to_vec());
        assert!(
            publisher.publish(&forged).await.is_err(),
            "{key} was published"
        );
    }
    let reports = shared::topology::job_reports_queue(&worker, &app.env.config.consumer);
    let channel = || async { worker.channel().await.unwrap() };
    // Another's queue cannot be read, a queue of its own naming cannot be made, and a job
    // queue cannot be bound to what the services publish.
    let drained = channel()
        .await
        .basic_consume(
            &reports.name,
            "spy",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(drained.is_err(), "consumed {}", reports.name);
    let made = channel()
        .await
        .queue_declare(
            &worker.queue_name("spy"),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(made.is_err(), "declared a queue of its own naming");
    let jobs = shared::topology::PoolTopology::new(&worker, "inproc");
    let bound = channel()
        .await
        .queue_bind(
            &jobs.queue,
            &events,
            "task.#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(bound.is_err(), "bound {} to task.#", jobs.queue);
    worker.close().await;
}
