//! Workflows (issue 27): steps that need each other run in their order with the results of what
//! they need, a dead step skips what follows it (or hands it an error object), a bad graph is
//! refused naming the step, and a workflow is cancelled whole. Every step runs on the real
//! in-process worker through RabbitMQ.

mod common;

use common::jobs::job_config;
use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::eventually;

/// A step on the in-process worker's pool.
fn step(id: &str, needs: Value, kind: &str, payload: Value) -> Value {
    json!({"id": id, "needs": needs, "job": {"kind": kind, "pool": "inproc", "payload": payload}})
}

async fn create(app: &App, token: &str, body: Value) -> Value {
    let (status, created) = app.post("/api/v1/workflows", Some(token), body).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Waits until workflow `id` is `status`; returns it.
async fn wait_workflow(app: &App, token: &str, id: &str, status: &str) -> Value {
    eventually(&format!("workflow {id} is {status}"), WAIT, || async {
        let (code, body) = app
            .get(&format!("/api/v1/workflows/{id}"), Some(token))
            .await;
        assert_eq!(code, 200, "{body}");
        (body["status"] == status).then_some(body)
    })
    .await
}

fn step_of<'a>(workflow: &'a Value, id: &str) -> &'a Value {
    workflow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {workflow}"))
}

fn time(step: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    step[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {step}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diamonds_join_starts_after_both_branches_with_their_results() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let created = create(
        &app,
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
    let done = wait_workflow(&app, &ada, id, "completed").await;
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
    assert!(time(d, "started_at") >= time(b, "finished_at"), "{done}");
    assert!(time(d, "started_at") >= time(c, "finished_at"), "{done}");
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
    // b's payload does not fit `sleep`: it dies at its first run (retrying cannot help).
    let created = create(
        &app,
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
    let failed = wait_workflow(&app, &ada, id, "failed").await;
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
    let created = create(
        &app,
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
    let created = create(
        &app,
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
    let done = wait_workflow(&app, &ada, created["id"].as_str().unwrap(), "completed").await;
    let runs: Vec<_> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (time(s, "started_at"), time(s, "finished_at")))
        .collect();
    // At the start of each run, at most 2 runs were going (from the runs' own times).
    for (start, _) in &runs {
        let going = runs.iter().filter(|(s, f)| s <= start && start < f).count();
        assert!(going <= 2, "{going} running at {start}: {done}");
    }
}
