//! Workflows (issue 27): steps that need each other run in their order with the results of what
//! they need, a dead step skips what follows it (or hands it an error object), a bad graph is
//! refused naming the step, and a workflow is cancelled whole. Every step runs on the real
//! in-process worker through RabbitMQ.

mod common;

use common::jobs::{job_config, time};
use common::workflows::step_of;
use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::eventually;

/// A step on the in-process worker's pool.
fn step(id: &str, needs: Value, kind: &str, payload: Value) -> Value {
    json!({"id": id, "needs": needs, "job": {"kind": kind, "pool": "inproc", "payload": payload}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diamonds_join_starts_after_both_branches_with_their_results() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "diamond", "steps": [
                step("a", json!([]), "echo", json!({"n": 1})),
                step("b", json!(["a"]), "sleep", json!({"ms": 300})),
                step("c", json!(["a"]), "echo", json!({"n": 3})),
                step("d", json!(["b", "c"]), "echo", json!({"n": 4})),
            ]}),
        )
        .await;
    assert_eq!(created["status"], "running");
    assert_eq!(step_of(&created, "d")["status"], "waiting", "{created}");
    let id = created["id"].as_str().unwrap();
    let done = app.wait_workflow(&ada, id, "completed").await;
    let (a, b, c, d) = (
        step_of(&done, "a"),
        step_of(&done, "b"),
        step_of(&done, "c"),
        step_of(&done, "d"),
    );
    for s in [a, b, c, d] {
        assert_eq!(
            (s["status"].as_str(), s["attempts"].as_i64()),
            (Some("completed"), Some(1)),
            "{s}"
        );
    }
    // Results flow: b and c were handed a's result, d both of theirs, by step id.
    assert_eq!(c["result"]["inputs"]["a"], a["result"], "{c}");
    assert_eq!(a["result"]["inputs"], json!({}));
    assert_eq!(
        d["result"],
        json!({"payload": {"n": 4}, "inputs": {"b": {"slept_ms": 300}, "c": c["result"]}})
    );
    // d started after both ended, from the runs' own times.
    assert!(time(&d["started_at"]) >= time(&b["finished_at"]), "{done}");
    assert!(time(&d["started_at"]) >= time(&c["finished_at"]), "{done}");
    // A step is an ordinary task: its runs are listed there, one each.
    let d_task = d["task_id"].as_str().unwrap();
    let (status, attempts) = app
        .get(&format!("/api/v1/tasks/{d_task}/attempts"), Some(&ada))
        .await;
    assert_eq!(status, 200);
    assert_eq!(attempts["items"].as_array().unwrap().len(), 1, "{attempts}");
    // Listed among Ada's; nobody else sees it.
    let (_, list) = app
        .get("/api/v1/workflows?status=completed", Some(&ada))
        .await;
    assert_eq!(list["items"][0]["id"], id, "{list}");
    let eve = app.sign_up("eve@example.com").await;
    let (status, _) = app
        .get(&format!("/api/v1/workflows/{id}"), Some(&eve))
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/api/v1/workflows", Some(&eve)).await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = app.get("/api/v1/workflows?all=true", Some(&eve)).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_step_skips_what_follows_it_unless_a_need_continues() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let mut adas = common::stream::open(&app.api, &ada, None).await;
    // b's payload does not fit `sleep`: it dies at its first run (retrying cannot help).
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "failing middle", "steps": [
                step("a", json!([]), "echo", json!({})),
                step("b", json!(["a"]), "sleep", json!({"ms": "soon"})),
                step("c", json!(["b"]), "echo", json!({})),
                step("e", json!(["c"]), "echo", json!({})),
                json!({"id": "d", "needs": [{"step": "b", "on_failure": "continue"}],
                       "job": {"kind": "echo", "pool": "inproc"}}),
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let failed = app.wait_workflow(&ada, id, "failed").await;
    let status = |s: &str| step_of(&failed, s)["status"].as_str().unwrap().to_string();
    assert_eq!(
        [
            status("a"),
            status("b"),
            status("c"),
            status("e"),
            status("d")
        ],
        ["completed", "dead", "skipped", "skipped", "completed"],
        "{failed}"
    );
    // Its owner sees it created and failed on the live stream, with what did not succeed.
    let created_event = adas.next_of("workflow.created", WAIT).await.unwrap().json();
    assert_eq!(created_event["data"]["workflow_id"], id);
    let failed_event = adas.next_of("workflow.failed", WAIT).await.unwrap().json();
    assert_eq!(
        (
            &failed_event["subject"],
            &failed_event["data"]["failed_steps"]
        ),
        (&json!(id), &json!(["b", "c", "e"])),
        "{failed_event}"
    );
    let d = step_of(&failed, "d");
    assert_eq!(d["result"]["inputs"]["b"]["status"], "dead", "{d}");
    assert!(
        d["result"]["inputs"]["b"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid sleep payload")),
        "{d}"
    );
    // A skipped step never ran: its task is cancelled, with no run.
    let c_task = step_of(&failed, "c")["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.task(&ada, &c_task).await["status"], "cancelled");
    let (_, attempts) = app
        .get(&format!("/api/v1/tasks/{c_task}/attempts"), Some(&ada))
        .await;
    assert_eq!(attempts["items"], json!([]));
    // Its owner is notified, told which steps did not succeed.
    let told = eventually("Ada is notified of the failed workflow", WAIT, || async {
        app.notifications(&ada)
            .await
            .into_iter()
            .find(|n| n["kind"] == "workflow.failed" && n["subject"] == id)
    })
    .await;
    assert!(told["body"].as_str().unwrap().contains("b, c, e"), "{told}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_graph_is_refused_naming_the_step_and_nothing_is_created() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.workflow_max_steps = 3;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let echo = |id: &str, needs: Value| step(id, needs, "echo", json!({}));
    let cases = [
        (
            vec![echo("a", json!(["x"]))],
            "\"a\": needs \"x\", no such step",
        ),
        (
            vec![echo("a", json!(["b"])), echo("b", json!(["a"]))],
            "is on a cycle",
        ),
        (
            vec![echo("a", json!([])), echo("a", json!([]))],
            "two steps have this id",
        ),
        (
            (0..4).map(|i| echo(&format!("s{i}"), json!([]))).collect(),
            "more than the 3",
        ),
        (
            vec![
                json!({"id": "a", "job": {"kind": "echo", "pool": "inproc", "cron": "0 * * * *"}}),
            ],
            "\"a\": a step's job takes no `cron`",
        ),
        (
            vec![json!({"id": "a", "job": {"kind": "echo", "pool": "nowhere"}})],
            "\"a\"",
        ),
    ];
    for (steps, expected) in cases {
        let (status, body) = app
            .post(
                "/api/v1/workflows",
                Some(&ada),
                json!({"title": "bad", "steps": steps}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(expected)),
            "{expected}: {body}"
        );
    }
    let (status, body) = app
        .post(
            "/api/v1/workflows",
            Some(&ada),
            json!({"title": "bad", "steps": [echo("a", json!([]))], "max_parallel": 0}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, list) = app.get("/api/v1/workflows", Some(&ada)).await;
    assert_eq!(list["items"], json!([]));
    let (_, tasks) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(tasks["items"], json!([]), "no step's task was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_workflow_stops_its_running_step_and_runs_nothing_more() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "long", "steps": [
                step("a", json!([]), "sleep", json!({"ms": 60_000})),
                step("b", json!(["a"]), "echo", json!({})),
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let a_task = step_of(&created, "a")["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.wait_status(&ada, &a_task, "running").await;
    let eve = app.sign_up("eve@example.com").await;
    let (status, _) = app
        .post(
            &format!("/api/v1/workflows/{id}/cancel"),
            Some(&eve),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "not Eve's");
    let (status, cancelled) = app
        .post(
            &format!("/api/v1/workflows/{id}/cancel"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(step_of(&cancelled, "a")["status"], "cancelled");
    assert_eq!(step_of(&cancelled, "b")["status"], "cancelled");
    // The running sleep was told to stop: its run ends, and b never runs.
    eventually("a's run ends", WAIT, || async {
        let (_, runs) = app
            .get(&format!("/api/v1/tasks/{a_task}/attempts"), Some(&ada))
            .await;
        (runs["items"][0]["outcome"] != "running").then_some(())
    })
    .await;
    let b_task = step_of(&cancelled, "b")["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, runs) = app
        .get(&format!("/api/v1/tasks/{b_task}/attempts"), Some(&ada))
        .await;
    assert_eq!(runs["items"], json!([]));
    let (status, again) = app
        .post(
            &format!("/api/v1/workflows/{id}/cancel"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!((status, &again["status"]), (200, &json!("cancelled")));
    // A step's task stays while its workflow does.
    let deleted = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/tasks/{b_task}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!((deleted.status, deleted.code()), (409, "workflow_step"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_more_than_max_parallel_steps_run_at_once() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let steps: Vec<Value> = (0..6)
        .map(|i| step(&format!("s{i}"), json!([]), "sleep", json!({"ms": 200})))
        .collect();
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "bounded", "steps": steps, "max_parallel": 2}),
        )
        .await;
    let waiting = created["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "waiting")
        .count();
    assert_eq!(waiting, 4, "two released at creation: {created}");
    let done = app
        .wait_workflow(&ada, created["id"].as_str().unwrap(), "completed")
        .await;
    let runs: Vec<_> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (time(&s["started_at"]), time(&s["finished_at"])))
        .collect();
    // At the start of each run, at most 2 runs were going (from the runs' own times).
    for (start, _) in &runs {
        let going = runs.iter().filter(|(s, f)| s <= start && start < f).count();
        assert!(going <= 2, "{going} running at {start}: {done}");
    }
}

/// How many runs task `task_id` had.
async fn runs(app: &App, token: &str, task_id: &Value) -> usize {
    let (status, body) = app
        .get(
            &format!("/api/v1/tasks/{}/attempts", task_id.as_str().unwrap()),
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().len()
}

/// Step `id` (needing `needs`): an http job whose endpoint answers 500 to its first call, with
/// one attempt, so its first run dies and a second succeeds.
fn dies_once(effects: &common::jobs::Effects, id: &str, needs: Value) -> Value {
    json!({"id": id, "needs": needs, "job": {"kind": "http", "pool": "inproc",
           "max_attempts": 1, "payload": effects.job("fail_times=1")}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_runs_again_only_what_did_not_succeed() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = common::jobs::Effects::start(&app).await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "retried", "steps": [
                step("a", json!([]), "echo", json!({})),
                dies_once(&effects, "b", json!(["a"])),
                step("c", json!(["b"]), "echo", json!({})),
                step("d", json!(["a"]), "echo", json!({})),
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let failed = app.wait_workflow(&ada, id, "failed").await;
    let status = |w: &Value, s: &str| step_of(w, s)["status"].as_str().unwrap().to_string();
    assert_eq!(
        ["a", "b", "c", "d"].map(|s| status(&failed, s)),
        ["completed", "dead", "skipped", "completed"]
    );
    let eve = app.sign_up("eve@example.com").await;
    let (code, _) = app
        .post(
            &format!("/api/v1/workflows/{id}/retry"),
            Some(&eve),
            json!({}),
        )
        .await;
    assert_eq!(code, 404, "not Eve's");
    let (code, retried) = app
        .post(
            &format!("/api/v1/workflows/{id}/retry"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(code, 200, "{retried}");
    assert_eq!(retried["status"], "running");
    assert_eq!(status(&retried, "c"), "waiting", "{retried}");
    let done = app.wait_workflow(&ada, id, "completed").await;
    let mut counts = Vec::new();
    for s in ["a", "b", "c", "d"] {
        counts.push(runs(&app, &ada, &step_of(&done, s)["task_id"]).await);
    }
    assert_eq!(counts, [1, 2, 1, 1], "a and d never ran twice: {done}");
    // b's dead letter went with its retry.
    let admin = app.admin_token().await;
    let (_, dead) = app.get("/api/v1/admin/jobs/dead", Some(&admin)).await;
    assert_eq!(dead["items"], json!([]), "{dead}");
    let (code, body) = app
        .post(
            &format!("/api/v1/workflows/{id}/retry"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!((code, body["code"].as_str()), (409, Some("not_retryable")));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admins_replay_of_a_dead_step_runs_it_again_through_its_workflow() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let effects = common::jobs::Effects::start(&app).await;
    // s keeps the workflow running for a while after b dies.
    let steps = [
        dies_once(&effects, "b", json!([])),
        step("c", json!(["b"]), "echo", json!({})),
        step("s", json!([]), "sleep", json!({"ms": 8000})),
    ];
    let created = app
        .create_workflow(&ada, json!({"title": "replayed", "steps": steps}))
        .await;
    let id = created["id"].as_str().unwrap();
    let b = step_of(&created, "b")["task_id"].clone();
    app.wait_status(&ada, b.as_str().unwrap(), "dead").await;
    let admin = app.admin_token().await;
    let replay = || async {
        app.post(
            "/api/v1/admin/jobs/dead/replay",
            Some(&admin),
            json!({"task_ids": [b]}),
        )
        .await
    };
    // While its workflow runs, the step stays dead, and the answer says why.
    let (code, refused) = replay().await;
    assert_eq!(
        (code, refused["code"].as_str()),
        (409, Some("not_retryable")),
        "{refused}"
    );
    // Once the workflow has failed, the dead-letter console's replay of the step reopens it:
    // what the step held up runs once the step succeeds, and the workflow completes.
    app.wait_workflow(&ada, id, "failed").await;
    let (code, replayed) = replay().await;
    assert_eq!(
        (code, replayed["count"].as_u64()),
        (200, Some(1)),
        "{replayed}"
    );
    let done = app.wait_workflow(&ada, id, "completed").await;
    assert_eq!(runs(&app, &ada, &b).await, 2);
    assert_eq!(runs(&app, &ada, &step_of(&done, "c")["task_id"]).await, 1);
    assert_eq!(runs(&app, &ada, &step_of(&done, "s")["task_id"]).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_map_runs_once_per_element_and_its_dependent_gets_the_results_in_order() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let items: Vec<i64> = (0..100).collect();
    let created = app.create_workflow(&ada,
        json!({"title": "mapped", "steps": [
            step("list", json!([]), "echo", json!({"items": items})),
            json!({"id": "each", "needs": ["list"], "map": {"step": "list", "pointer": "/payload/items"},
                   "job": {"kind": "echo", "pool": "inproc", "payload": {"x": 1}}}),
            step("sum", json!(["each"]), "echo", json!({})),
            // Over what is not an array: the map step dies, what needs it is skipped.
            json!({"id": "wrong", "needs": ["list"], "map": {"step": "list", "pointer": "/payload"},
                   "job": {"kind": "echo", "pool": "inproc"}}),
            step("after-wrong", json!(["wrong"]), "echo", json!({})),
            // At a pointer that names nothing: it dies too.
            json!({"id": "none", "needs": ["list"], "map": {"step": "list", "pointer": "/inputs/nothing"},
                   "job": {"kind": "echo", "pool": "inproc"}}),
        ]}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let done = app.wait_workflow(&ada, id, "failed").await;
    let status = |s: &str| step_of(&done, s)["status"].as_str().unwrap().to_string();
    assert_eq!(
        ["list", "each", "sum", "wrong", "after-wrong", "none"].map(status),
        [
            "completed",
            "completed",
            "completed",
            "dead",
            "skipped",
            "dead"
        ],
        "{done}"
    );
    assert!(
        step_of(&done, "wrong")["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an array")),
        "{done}"
    );
    assert!(
        step_of(&done, "none")["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing at")),
        "{done}"
    );
    // sum was handed each run's result, in the array's order.
    let results = step_of(&done, "sum")["result"]["inputs"]["each"]
        .as_array()
        .unwrap_or_else(|| panic!("{done}"))
        .clone();
    assert_eq!(results.len(), 100);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["item"], json!(i), "{result}");
        assert_eq!(result["payload"], json!({"x": 1}));
        // A run is handed its element, not the whole list again.
        assert_eq!(result["inputs"], json!({}));
    }
    // 100 runs, each a task of its own that ran once.
    let db = app.db(&app.env.config.task.database).await;
    let (runs, attempts): (i64, i64) = sqlx::query_as(
        "SELECT count(DISTINCT j.task_id), count(a.run_id) FROM jobs j
           LEFT JOIN job_attempts a ON a.task_id = j.task_id
          WHERE j.workflow_id = $1::uuid AND j.step = 'each' AND j.item_index IS NOT NULL",
    )
    .bind(id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((runs, attempts), (100, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_map_over_an_empty_array_completes_at_once() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app.create_workflow(&ada,
        json!({"title": "empty map", "steps": [
            step("list", json!([]), "echo", json!({"items": []})),
            json!({"id": "each", "needs": ["list"], "map": {"step": "list", "pointer": "/payload/items"},
                   "job": {"kind": "echo", "pool": "inproc"}}),
            step("after", json!(["each"]), "echo", json!({})),
        ]}),
    )
    .await;
    let done = app
        .wait_workflow(&ada, created["id"].as_str().unwrap(), "completed")
        .await;
    assert_eq!(step_of(&done, "each")["result"], json!([]));
    assert_eq!(
        step_of(&done, "after")["result"]["inputs"]["each"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_workflow_runs_again_on_retry_even_the_step_its_cancel_stopped() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "resumed", "steps": [
                step("a", json!([]), "sleep", json!({"ms": 1500})),
                step("b", json!(["a"]), "echo", json!({})),
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let a_task = step_of(&created, "a")["task_id"].clone();
    app.wait_status(&ada, a_task.as_str().unwrap(), "running")
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/workflows/{id}/cancel"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    // Its stopped run has ended before the retry (else the retry would race the stop).
    eventually("a's run ends", WAIT, || async {
        let (_, runs) = app
            .get(
                &format!("/api/v1/tasks/{}/attempts", a_task.as_str().unwrap()),
                Some(&ada),
            )
            .await;
        (runs["items"][0]["outcome"] != "running").then_some(())
    })
    .await;
    let (status, retried) = app
        .post(
            &format!("/api/v1/workflows/{id}/retry"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    // The cancel's mark on a no longer stops its new dispatch.
    let done = app.wait_workflow(&ada, id, "completed").await;
    assert_eq!(runs(&app, &ada, &a_task).await, 2, "{done}");
    assert_eq!(step_of(&done, "b")["status"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_waiting_step_skips_what_needs_it_and_a_map_step_is_cancelled_whole() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "partly cancelled", "steps": [
                step("a", json!([]), "sleep", json!({"ms": 1000})),
                step("b", json!(["a"]), "echo", json!({})),
                step("c", json!(["b"]), "echo", json!({})),
                json!({"id": "m", "needs": ["a"], "map": {"step": "a", "pointer": "/list"},
                       "job": {"kind": "echo", "pool": "inproc"}}),
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let task_of = |s: &str| {
        step_of(&created, s)["task_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (status, body) = app
        .post(
            &format!("/api/v1/tasks/{}/cancel", task_of("m")),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("map_step")),
        "{body}"
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/tasks/{}/cancel", task_of("b")),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let failed = app.wait_workflow(&ada, id, "failed").await;
    let status = |s: &str| step_of(&failed, s)["status"].as_str().unwrap().to_string();
    // a ran; b was cancelled, c skipped; the map over a's result (no `list`) died.
    assert_eq!(
        ["a", "b", "c", "m"].map(status),
        ["completed", "cancelled", "skipped", "dead"],
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_whose_inputs_are_too_large_dies_saying_so() {
    let app = App::start_with(|c| {
        job_config(c);
        c.jobs.workflow_max_inputs_bytes = 1000;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let big = "x".repeat(2000);
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "large", "steps": [
                step("a", json!([]), "echo", json!({"text": big})),
                step("b", json!(["a"]), "echo", json!({})),
            ]}),
        )
        .await;
    let failed = app
        .wait_workflow(&ada, created["id"].as_str().unwrap(), "failed")
        .await;
    let b = step_of(&failed, "b");
    assert_eq!(b["status"], "dead", "{failed}");
    assert!(
        b["error"]
            .as_str()
            .is_some_and(|e| e.contains("jobs.workflow_max_inputs_bytes")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deactivated_owners_workflow_is_cancelled_and_its_waiting_steps_never_run() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "orphaned", "steps": [
                step("a", json!([]), "sleep", json!({"ms": 1500})),
                step("b", json!(["a"]), "echo", json!({})),
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let ada_id = app.user_id(&ada).await;
    let deactivated = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{ada_id}"),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_eq!(deactivated.status, 200, "{:?}", deactivated.body);
    let cancelled = app.wait_workflow(&admin, id, "cancelled").await;
    assert_eq!(
        step_of(&cancelled, "b")["status"],
        "cancelled",
        "{cancelled}"
    );
    // a (running when its owner went) ends as it will; nothing after it is released.
    eventually("a has ended", WAIT, || async {
        let (_, now) = app
            .get(&format!("/api/v1/workflows/{id}"), Some(&admin))
            .await;
        (step_of(&now, "a")["finished_at"].is_string()).then_some(())
    })
    .await;
    let (_, after) = app
        .get(&format!("/api/v1/workflows/{id}"), Some(&admin))
        .await;
    assert_eq!(step_of(&after, "b")["status"], "cancelled", "{after}");
    assert_eq!(after["status"], "cancelled");
}
