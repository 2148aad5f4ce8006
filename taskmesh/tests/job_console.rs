//! The operator's job console through the gateway (admins only): jobs counted by state and
//! found by owner, error text and creation time, oldest or newest first; one action on many
//! picked jobs (run now, cancel, replay, delete), each applied as its state allows and the rest
//! counted; a dead job deleted; a cron template's schedule changed; each pool's runs over the
//! last hour and day; a worker's runs in flight.

mod common;

use chrono::{Duration, Utc};
use common::jobs::job_config;
use common::{App, WAIT};
use reqwest::Method;
use serde_json::{json, Value};
use shared::testkit::eventually;

fn ids(page: &Value) -> Vec<String> {
    let items = page["items"].as_array().unwrap();
    items
        .iter()
        .map(|job| job["task_id"].as_str().unwrap().to_string())
        .collect()
}

fn id(task: &Value) -> String {
    task["id"].as_str().unwrap().to_string()
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A job that dies at its first attempt: the SSRF guard refuses its address for good.
fn doomed() -> Value {
    json!({"kind": "http", "pool": "inproc", "max_attempts": 1,
           "payload": {"url": "http://169.254.169.254/latest/meta-data"}})
}

fn later() -> Value {
    json!({"kind": "noop", "pool": "inproc", "run_at": (Utc::now() + Duration::hours(2)).to_rfc3339()})
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_counted_by_state_and_found_by_owner_error_and_time_either_way() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let first = app.create_job(&ada, "first", later()).await;
    let dead = app.create_job(&ada, "doomed", doomed()).await;
    app.wait_status(&ada, &id(&dead), "dead").await;
    let between = Utc::now();
    let mine = app.create_job(&admin, "the admin's", later()).await;

    // Counts by state, the other filters applied.
    let ada_id = first["owner_id"].as_str().unwrap();
    let (status, counts) = app
        .get(
            &format!("/api/v1/admin/jobs/counts?owner={ada_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{counts}");
    assert_eq!(
        (
            &counts["counts"]["scheduled"],
            &counts["counts"]["dead"],
            &counts["counts"]["running"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{counts}"
    );
    // By owner, with the owner's name on each row.
    let (_, page) = app
        .get(&format!("/api/v1/admin/jobs?owner={ada_id}"), Some(&admin))
        .await;
    assert_eq!(ids(&page), vec![id(&dead), id(&first)]);
    assert_eq!(page["items"][0]["owner_name"], "Ada Lovelace");
    assert_eq!(page["items"][0]["priority"], "normal");
    assert!(page["items"][0]["duration_ms"].is_i64(), "{page}");
    assert!(
        page["items"][1]["duration_ms"].is_null(),
        "never ran: {page}"
    );
    // By the text of the last error, letter case aside; `%` is a letter, not a wildcard.
    let (_, page) = app
        .get("/api/v1/admin/jobs?error=INTERNAL%20ADDRESS", Some(&admin))
        .await;
    assert_eq!(ids(&page), vec![id(&dead)]);
    let (_, page) = app.get("/api/v1/admin/jobs?error=%25", Some(&admin)).await;
    assert_eq!(ids(&page), Vec::<String>::new());
    // By creation time.
    let at = encoded(&between.to_rfc3339());
    let (_, page) = app
        .get(
            &format!("/api/v1/admin/jobs?created_after={at}"),
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&page), vec![id(&mine)]);
    let (_, page) = app
        .get(
            &format!("/api/v1/admin/jobs?created_before={at}"),
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&page), vec![id(&dead), id(&first)]);
    // Oldest first, a page at a time, with its own cursor.
    let mut seen = Vec::new();
    let mut path = "/api/v1/admin/jobs?sort=oldest&limit=1".to_string();
    loop {
        let (status, page) = app.get(&path, Some(&admin)).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["next_before"].is_null(), "{page}");
        seen.extend(ids(&page));
        match page["next_after"].as_str() {
            Some(after) => path = format!("/api/v1/admin/jobs?sort=oldest&limit=1&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![id(&first), id(&dead), id(&mine)]);
    // Filters that are not right say which.
    for (bad, word) in [
        ("sort=biggest", "sort"),
        ("after=0190a5c4-0000-7000-8000-000000000000", "after"),
        ("payload=%5B1%5D", "object"),
        (
            &*format!("created_after={at}&created_before={at}"),
            "created_after",
        ),
        (&*format!("error={}", "x".repeat(201)), "error"),
    ] {
        let (status, problem) = app
            .get(&format!("/api/v1/admin/jobs?{bad}"), Some(&admin))
            .await;
        assert_eq!(status, 422, "{bad}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(word),
            "{problem}"
        );
    }
    // None of it for a member.
    for path in [
        "/api/v1/admin/jobs/counts",
        "/api/v1/admin/pools/throughput",
        "/api/v1/workers/inproc-1",
    ] {
        assert_eq!(app.get(path, Some(&ada)).await.0, 403, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_action_applies_to_the_jobs_whose_state_allows_it_and_counts_the_rest() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut dead = Vec::new();
    for n in 0..3 {
        let job = app.create_job(&ada, &format!("doomed {n}"), doomed()).await;
        app.wait_status(&ada, &id(&job), "dead").await;
        dead.push(id(&job));
    }
    // The dead list by kind and error text.
    for (filter, count) in [
        ("kind=http&error=INTERNAL", 3),
        ("kind=noop", 0),
        ("error=nothing+like", 0),
    ] {
        let (status, list) = app
            .get(&format!("/api/v1/admin/jobs/dead?{filter}"), Some(&admin))
            .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), count, "{filter}");
    }
    let waiting = id(&app.create_job(&ada, "waiting", later()).await);
    let bulk = |action: &str, ids: Vec<String>| json!({"action": action, "task_ids": ids});
    let all: Vec<String> = dead.iter().cloned().chain([waiting.clone()]).collect();

    // A member may not; nor may anyone name none, or a thousand and one.
    assert_eq!(
        app.post(
            "/api/v1/admin/jobs/bulk",
            Some(&ada),
            bulk("replay", all.clone())
        )
        .await
        .0,
        403
    );
    let (status, problem) = app
        .post(
            "/api/v1/admin/jobs/bulk",
            Some(&admin),
            bulk("cancel", vec![]),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("invalid_selection"))
    );
    let (status, _) = app
        .post(
            "/api/v1/admin/jobs/bulk",
            Some(&admin),
            bulk("explode", vec![waiting.clone()]),
        )
        .await;
    assert_eq!(status, 400, "an unknown action: the body is malformed");

    // Replay: the three dead ones run again (and die again); the waiting one is skipped.
    let (status, outcome) = app
        .post(
            "/api/v1/admin/jobs/bulk",
            Some(&admin),
            bulk("replay", all.clone()),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome, json!({"done": 3, "skipped": 1}));
    for job in &dead {
        eventually("a second attempt", WAIT, || async {
            (app.attempts(&ada, job).await.len() == 2).then_some(())
        })
        .await;
        app.wait_status(&ada, job, "dead").await;
    }
    // Delete: only dead jobs, with their tasks.
    let (_, outcome) = app
        .post(
            "/api/v1/admin/jobs/bulk",
            Some(&admin),
            bulk("delete", vec![dead[0].clone(), waiting.clone()]),
        )
        .await;
    assert_eq!(outcome, json!({"done": 1, "skipped": 1}));
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{}", dead[0]), Some(&ada))
            .await
            .0,
        404
    );
    // One dead job deleted on its own; a job that is not dead refused; one gone not found.
    let one = |task: &str| format!("/api/v1/admin/jobs/{task}");
    let reply = app
        .send(Method::DELETE, &one(&dead[1]), Some(&ada), None)
        .await;
    assert_eq!(reply.status, 403);
    let reply = app
        .send(Method::DELETE, &one(&dead[1]), Some(&admin), None)
        .await;
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    let reply = app
        .send(Method::DELETE, &one(&dead[1]), Some(&admin), None)
        .await;
    assert_eq!(reply.status, 404);
    let reply = app
        .send(Method::DELETE, &one(&waiting), Some(&admin), None)
        .await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (409, Some("not_dead"))
    );
    let (_, list) = app.get("/api/v1/admin/jobs/dead", Some(&admin)).await;
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![dead[2].as_str()]);
    // Run now: the waiting one runs at once; a dead one is skipped.
    let (_, outcome) = app
        .post(
            "/api/v1/admin/jobs/bulk",
            Some(&admin),
            bulk("retry_now", vec![waiting.clone(), dead[2].clone()]),
        )
        .await;
    assert_eq!(outcome, json!({"done": 1, "skipped": 1}));
    app.wait_status(&ada, &waiting, "completed").await;
    // Cancel: a live one is cancelled; a finished one skipped, named twice counted once.
    let live = id(&app.create_job(&ada, "live", later()).await);
    let (_, outcome) = app
        .post(
            "/api/v1/admin/jobs/bulk",
            Some(&admin),
            bulk("cancel", vec![live.clone(), waiting.clone(), live.clone()]),
        )
        .await;
    assert_eq!(outcome, json!({"done": 1, "skipped": 1}));
    app.wait_status(&ada, &live, "cancelled").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_changes_a_cron_templates_schedule() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let template = app
        .create_job(
            &ada,
            "nightly",
            json!({"kind": "noop", "pool": "inproc", "cron": "0 3 * * *"}),
        )
        .await;
    let path = format!("/api/v1/admin/cron/{}", id(&template));
    let change = |cron: &str| json!({"cron": cron});
    let patch = |token: &String, body: Value| {
        let token = token.clone();
        let path = path.clone();
        let app = &app;
        async move {
            app.send(Method::PATCH, &path, Some(&token), Some(body))
                .await
        }
    };
    assert_eq!(patch(&ada, change("0 4 * * *")).await.status, 403);
    let reply = patch(&admin, change("15 4 * * *")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["cron"], "15 4 * * *");
    let ticks = reply.body["next_ticks"].as_array().unwrap();
    assert_eq!(ticks.len(), 3);
    for tick in ticks {
        let at: chrono::DateTime<Utc> = tick.as_str().unwrap().parse().unwrap();
        assert_eq!(at.format("%H:%M").to_string(), "04:15", "{tick}");
    }
    for bad in ["61 * * * *", "* *", &"1 ".repeat(60)] {
        let reply = patch(&admin, change(bad)).await;
        assert_eq!(reply.status, 422, "{bad}: {:?}", reply.body);
    }
    let (_, list) = app.get("/api/v1/admin/cron", Some(&admin)).await;
    assert_eq!(
        list["items"][0]["cron"], "15 4 * * *",
        "a refused change kept nothing"
    );
    let missing = format!("/api/v1/admin/cron/{}", uuid::Uuid::now_v7());
    let reply = app
        .send(
            Method::PATCH,
            &missing,
            Some(&admin),
            Some(change("0 4 * * *")),
        )
        .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pools_runs_over_the_hour_and_a_workers_runs_in_flight_are_shown() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    let quick = app
        .create_job(&ada, "quick", json!({"kind": "noop", "pool": "inproc"}))
        .await;
    app.wait_status(&ada, &id(&quick), "completed").await;
    let (status, throughput) = app
        .get("/api/v1/admin/pools/throughput", Some(&admin))
        .await;
    assert_eq!(status, 200, "{throughput}");
    let windows: Vec<(&str, i64)> = throughput["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["pool"] == "inproc")
        .map(|w| {
            (
                w["window"].as_str().unwrap(),
                w["succeeded"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(windows, vec![("hour", 1), ("day", 1)], "{throughput}");

    let long = app
        .create_job(
            &ada,
            "long",
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 60000}}),
        )
        .await;
    app.wait_status(&ada, &id(&long), "running").await;
    let worker = app.attempts(&ada, &id(&long)).await[0]["worker_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, detail) = app
        .get(
            &format!("/api/v1/workers/{}", encoded(&worker)),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    let titles = |list: &Value| -> Vec<String> {
        let runs = list.as_array().unwrap();
        runs.iter()
            .map(|r| r["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(titles(&detail["in_flight"]), vec!["long"]);
    assert_eq!(titles(&detail["recent"]), vec!["quick"]);
    assert_eq!(detail["worker"]["state"], "alive", "{detail}");
    let (status, _) = app.get("/api/v1/workers/nobody-here", Some(&admin)).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            &format!("/api/v1/tasks/{}/cancel", id(&long)),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
}
