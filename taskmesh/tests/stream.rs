//! The live stream (`GET /api/v1/events/stream`): tickets work once and only as a gateway issued
//! them, a user sees the events of
//! the tasks they may see and never another's, `Last-Event-ID` resumes without a gap across a
//! gateway restart, a second gateway serves the same log, a user's streams are limited, and
//! every event matches the schema the OpenAPI document gives for it.

mod common;

use common::stream::{self, EventStream};
use common::{App, SecondGateway, WAIT};
use reqwest::Method;
use serde_json::{json, Value};
use shared::testkit::eventually;

async fn user_id(app: &App, token: &str) -> String {
    app.get("/api/v1/users/me", Some(token)).await.1["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A task of `token`'s titled `title`, assigned to `assignee` once task-svc knows them.
async fn create(app: &App, token: &str, title: &str, assignee: Option<&str>) -> String {
    let body = match assignee {
        Some(a) => json!({"title": title, "assignee_id": a}),
        None => json!({"title": title}),
    };
    let task: Value = eventually("the task to be created", WAIT, || async {
        let (status, task) = app.post("/api/v1/tasks", Some(token), body.clone()).await;
        (status == 201).then_some(task)
    })
    .await;
    task["id"].as_str().unwrap().to_string()
}

/// Reads `stream` until an event about `task` of type `event` arrives; every event read on the
/// way is returned too, so a test can check what came before.
async fn until(stream: &mut EventStream, event: &str, task: &str) -> Vec<stream::SseEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let next = stream
            .next(left)
            .await
            .unwrap_or_else(|| panic!("no {event} for {task} within {WAIT:?}; saw {seen:?}"));
        let found = next.event == event && next.subject() == task;
        seen.push(next);
        if found {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_opens_one_stream_once_and_nothing_opens_without_one() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;

    let ticket = stream::ticket(&app.api, &ada).await;
    assert_eq!(ticket.len(), 43);
    let first = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
    assert_eq!(first.status(), 200);
    let mut events = EventStream::new(first);
    let ready = events.next(WAIT).await.expect("ready comes first");
    assert_eq!(ready.event, "ready");

    let again = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
    assert_eq!(again.status(), 401, "a ticket works once");
    let made_up = stream::request(&app.api, &format!("ticket={}", "A".repeat(43)), None).await;
    assert_eq!(made_up.status(), 401);
    let none = stream::request(&app.api, "", None).await;
    assert_eq!(none.status(), 401);
    let bad_id = reqwest::Client::new()
        .get(format!("{}/api/v1/events/stream", app.api))
        .bearer_auth(&ada)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 400);
    // A bearer token works for programs.
    let bearer = reqwest::Client::new()
        .get(format!("{}/api/v1/events/stream", app.api))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    // Logging out ends the ticket's session: a ticket of it no longer opens a stream.
    let late = stream::ticket(&app.api, &ada).await;
    let (status, _) = app.post("/api/v1/auth/logout", Some(&ada), json!({})).await;
    assert!(status == 204 || status == 200, "logout: {status}");
    let after_logout = stream::request(&app.api, &format!("ticket={late}"), None).await;
    assert_eq!(after_logout.status(), 401);
}

/// Writes a ticket entry straight into Redis, as anyone who can reach Redis could (a worker, a
/// job's program); returns the ticket.
async fn forge_ticket(app: &App, entry: Value) -> String {
    use secrecy::ExposeSecret;
    use sha2::Digest;
    let ticket = "F".repeat(43);
    let config = &app.env.config.redis;
    let client = redis::Client::open(config.url.expose_secret()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let digest = hex::encode(sha2::Sha256::digest(ticket.as_bytes()));
    let _: () = redis::cmd("SET")
        .arg(format!("{}stream:ticket:{digest}", config.key_prefix))
        .arg(entry.to_string())
        .arg("EX")
        .arg(60)
        .query_async(&mut redis)
        .await
        .unwrap();
    ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_written_into_redis_by_anyone_but_a_gateway_opens_nothing() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let id = user_id(&app, &ada).await;
    // No session: it used to skip the session check and open a stream as anyone, admin included.
    let no_session = json!({"user_id": id, "role": "admin", "session_id": null});
    // A live-looking session and a tag made up without the gateways' key.
    let made_up = json!({"user_id": id, "role": "admin", "session_id": uuid::Uuid::now_v7(),
        "tag": "AAAA"});
    for entry in [no_session, made_up] {
        let ticket = forge_ticket(&app, entry.clone()).await;
        let answer = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
        assert_eq!(answer.status(), 401, "{entry}");
    }
    // A ticket the gateway issued still opens its stream.
    let ticket = stream::ticket(&app.api, &ada).await;
    let answer = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
    assert_eq!(answer.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_the_tasks_they_may_see_and_never_another_users() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    let mut bobs = stream::open(&app.api, &bob, None).await;
    let mut eves = stream::open(&app.api, &eve, None).await;

    // Eve's private task, then Ada's task for Bob: the log keeps this order, so if Bob reads
    // Ada's task without Eve's before it, Eve's never reached him.
    let secret = create(&app, &eve, "eve's secret", None).await;
    let seen = until(&mut eves, "task.created", &secret).await;
    let before_channel = seen.last().unwrap().id.clone().unwrap();
    let shared = create(&app, &ada, "for bob", Some(&bob_id)).await;
    let seen = until(&mut bobs, "task.created", &shared).await;
    assert!(
        seen.iter()
            .all(|e| e.subject() != secret && !e.data.contains("eve's secret")),
        "Bob saw Eve's task: {seen:?}"
    );
    // Bob completes it; the change reaches Ada's stream, opened now, and Bob's.
    let mut adas = stream::open(&app.api, &ada, None).await;
    let done = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/tasks/{shared}"),
            Some(&bob),
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let seen = until(&mut adas, "task.completed", &shared).await;
    assert_eq!(
        seen.last().unwrap().json()["data"]["actor_id"],
        bob_id.as_str()
    );
    let _ = until(&mut bobs, "task.completed", &shared).await;

    // A channel's members see its tasks; one who leaves sees no more of them.
    let (status, channel) = app
        .post("/api/v1/channels", Some(&ada), json!({"name": "Ops"}))
        .await;
    assert_eq!(status, 201);
    let channel_id = channel["id"].as_str().unwrap().to_string();
    let code = channel["join_code"].as_str().unwrap();
    let (status, _) = app
        .post("/api/v1/channels/join", Some(&eve), json!({"code": code}))
        .await;
    assert_eq!(status, 200);
    let (status, task) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "for the channel", "channel_id": channel_id}),
        )
        .await;
    assert_eq!(status, 201);
    let in_channel = task["id"].as_str().unwrap().to_string();
    let _ = until(&mut eves, "task.created", &in_channel).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/channels/{channel_id}/leave"),
            Some(&eve),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let renamed = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/tasks/{in_channel}"),
            Some(&ada),
            Some(json!({"title": "after eve left"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    // Eve's own next event comes after the update in the log; the update must not be before it.
    let marker = create(&app, &eve, "eve's marker", None).await;
    let seen = until(&mut eves, "task.created", &marker).await;
    assert!(
        seen.iter().all(|e| e.subject() != in_channel),
        "Eve saw a channel task after leaving: {seen:?}"
    );
    // Catching up from before the channel, Eve is shown nothing of its task either: she may
    // not see it now, though she could when its events were written.
    let mut resumed = stream::open(&app.api, &eve, Some(&before_channel)).await;
    let seen = until(&mut resumed, "task.created", &marker).await;
    assert!(
        seen.iter().all(|e| e.subject() != in_channel),
        "Eve caught up on a channel task after leaving: {seen:?}"
    );
    assert!(seen.iter().any(|e| e.event == "ready"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_without_a_gap_across_a_gateway_restart_and_a_second_gateway() {
    let mut app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut adas = stream::open(&app.api, &ada, None).await;
    let first = create(&app, &ada, "before the restart", None).await;
    let seen = until(&mut adas, "task.created", &first).await;
    let last = seen.last().unwrap().id.clone().expect("events carry ids");

    // The gateway goes away; tasks are made while it is gone (straight to task-svc would need
    // an assertion, so through a second gateway, which also shows replicas share the log).
    let stack = app.stack.as_mut().unwrap();
    stack.stop_service("api-gateway").await.unwrap();
    drop(adas);
    let second = SecondGateway::start(&app).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(create_via(&second.api, &ada, &format!("while away {i}")).await);
    }
    app.stack
        .as_mut()
        .unwrap()
        .start_service("api-gateway")
        .await
        .unwrap();
    app.stack.as_ref().unwrap().wait_ready(WAIT).await.unwrap();

    // Back on the first gateway, resuming after the last event seen: every creation, in order,
    // each once.
    let token = app
        .login("ada@example.com", common::PASSWORD)
        .await
        .text("access_token");
    let mut resumed = stream::open(&app.api, &token, Some(&last)).await;
    let mut created = Vec::new();
    while created.len() < made.len() {
        let event = resumed
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("resumed stream stopped after {created:?}"));
        if event.event == "task.created" {
            created.push(event.subject());
        }
    }
    assert_eq!(created, made, "resumed in order, none lost, none twice");

    // Live on the second gateway: a change made through the first reaches it.
    let mut on_second = stream::open(&second.api, &token, None).await;
    let later = create(&app, &token, "seen on the second gateway", None).await;
    let _ = until(&mut on_second, "task.created", &later).await;
    second.stop.cancel();
}

async fn create_via(api: &str, token: &str, title: &str) -> String {
    let task = stream::post(api, "/api/v1/tasks", token, &json!({"title": title})).await;
    task["id"].as_str().unwrap().to_string()
}

/// Another gateway replica beside the stack's, with the same configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_at_most_the_configured_streams_open() {
    let app = App::start_with(|c| c.stream.max_streams_per_user = 2).await;
    let ada = app.sign_up("ada@example.com").await;
    let one = stream::open(&app.api, &ada, None).await;
    let _two = stream::open(&app.api, &ada, None).await;
    let ticket = stream::ticket(&app.api, &ada).await;
    let third = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams");
    // Closing one gives its slot back.
    drop(one);
    eventually("a slot is free again", WAIT, || async {
        let ticket = stream::ticket(&app.api, &ada).await;
        let answer = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
        (answer.status() == 200).then_some(())
    })
    .await;
}

/// A stream ends with `session_ended` as soon as its session ends (a logout everywhere, a
/// deactivation), not at its next session check: the heartbeat, which checks the session, is
/// made longer than the wait. Another user's stream carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_session_ended_as_soon_as_its_session_ends() {
    let app = App::start_with(|c| {
        c.stream.heartbeat_secs = 600;
        c.auth.bootstrap_admin_email = Some(common::jobs::ADMIN.into());
    })
    .await;
    let admin = app.sign_up_verified(common::jobs::ADMIN).await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    let mut ada_stream = stream::open(&app.api, &ada, None).await;
    let mut bob_stream = stream::open(&app.api, &bob, None).await;
    let mut admin_stream = stream::open(&app.api, &admin, None).await;
    for s in [&mut ada_stream, &mut bob_stream, &mut admin_stream] {
        assert!(s.next_of("ready", WAIT).await.is_some());
    }

    let reply = app
        .send(Method::POST, "/api/v1/auth/logout-all", Some(&ada), None)
        .await;
    assert_eq!(reply.status, 204);
    let last = ada_stream
        .next(WAIT)
        .await
        .expect("an event before the end");
    assert_eq!(
        (last.event.as_str(), last.json()),
        ("session_ended", json!({}))
    );
    assert!(ada_stream.next(WAIT).await.is_none(), "the stream ends");

    let path = format!("/api/v1/users/{bob_id}");
    let body = json!({"active": false});
    let reply = app
        .send(Method::PATCH, &path, Some(&admin), Some(body))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let last = bob_stream.next_of("session_ended", WAIT).await;
    assert!(last.is_some(), "the deactivated user's stream is told");
    assert!(bob_stream.next(WAIT).await.is_none(), "the stream ends");

    // The admin's stream carries on.
    let task = create(&app, &admin, "Still live", None).await;
    until(&mut admin_stream, "task.created", &task).await;
}

/// One address is bounded whoever's streams they are, and one gateway whatever the addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_and_one_gateway_hold_at_most_their_configured_streams() {
    let app = App::start_with(|c| {
        c.stream.max_streams_per_address = 2;
        c.stream.max_streams = 3;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let ada_one = stream::open(&app.api, &ada, None).await;
    let _bob_one = stream::open(&app.api, &bob, None).await;
    // Bob has one stream of his five, but this address has its two.
    let ticket = stream::ticket(&app.api, &bob).await;
    let third = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams_from_address");
    // The refused stream took none of Bob's own slots: once Ada closes hers, he opens a second.
    drop(ada_one);
    let bob_two = eventually("the address has a slot again", WAIT, || async {
        let ticket = stream::ticket(&app.api, &bob).await;
        let answer = stream::request(&app.api, &format!("ticket={ticket}"), None).await;
        (answer.status() == 200).then_some(answer)
    })
    .await;

    // Behind a proxy every client has its own address; this gateway still holds three at most.
    let app = App::start_with(|c| {
        c.rate_limit.trusted_proxies = 1;
        c.stream.max_streams = 3;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let mut held = Vec::new();
    for n in 1..=3 {
        let ticket = stream::ticket(&app.api, &ada).await;
        let answer = stream::request_from(
            &app.api,
            &format!("ticket={ticket}"),
            &format!("203.0.113.{n}"),
        )
        .await;
        assert_eq!(answer.status(), 200);
        held.push(answer);
    }
    let ticket = stream::ticket(&app.api, &ada).await;
    let fourth = stream::request_from(&app.api, &format!("ticket={ticket}"), "203.0.113.4").await;
    assert_eq!(fourth.status(), 503);
    let body: Value = fourth.json().await.unwrap();
    assert_eq!(body["code"], "streams_full");
    drop((held, bob_two));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_gets_queue_and_worker_stats_and_a_member_may_not_ask() {
    let app =
        App::start_with(|c| c.auth.bootstrap_admin_email = Some("admin@example.com".into())).await;
    let admin = app.sign_up_verified("admin@example.com").await;
    let ada = app.sign_up("ada@example.com").await;
    let ticket = stream::ticket(&app.api, &ada).await;
    let refused = stream::request(&app.api, &format!("ticket={ticket}&stats=true"), None).await;
    assert_eq!(refused.status(), 403);

    let ticket = stream::ticket(&app.api, &admin).await;
    let answer = stream::request(&app.api, &format!("ticket={ticket}&stats=true"), None).await;
    assert_eq!(answer.status(), 200);
    let mut events = EventStream::new(answer);
    // Every 5 s; soon one lists the stack's own worker.
    loop {
        let stats = events
            .next_of("stats", WAIT)
            .await
            .expect("a stats event")
            .json();
        assert!(stats["pools"].is_array(), "{stats}");
        if !stats["workers"].as_array().unwrap().is_empty() {
            break;
        }
    }
}

/// The OpenAPI document describes each event of the stream (the `text/event-stream` response's
/// schema, which contract checkers apply to every event), and what the stream sends matches
/// it: `ready` (with `retry`), a task's event, and `reset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_matches_the_documented_event_schema() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let mut adas = stream::open(&app.api, &ada, None).await;
    let task = create(&app, &ada, "documented", None).await;
    let mut events = until(&mut adas, "task.created", &task).await;
    // A client whose last event is older than the log is told to reload.
    let mut late = stream::open(&app.api, &ada, Some("1-0")).await;
    events.extend(late.next_of("reset", WAIT).await);
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for kind in ["ready", "task.created", "reset"] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }
    assert!(events.iter().any(|e| e.retry.is_some()), "{events:?}");

    let (status, document) = app.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut schema = document["paths"]["/api/v1/events/stream"]["get"]["responses"]["200"]
        ["content"]["text/event-stream"]["schema"]
        .clone();
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        schema = document["components"]["schemas"][name].clone();
    }
    // Each event as contract checkers read it: its fields, `retry` as a number.
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut event = json!({"event": e.event, "data": e.data});
            if let Some(id) = &e.id {
                event["id"] = json!(id);
            }
            if let Some(retry) = &e.retry {
                event["retry"] = json!(retry.parse::<u64>().expect("retry is a number"));
            }
            event
        })
        .collect();
    // Checked by the JSON Schema validator schemathesis uses (OpenAPI 3.1: draft 2020-12).
    let script = "import json, sys, jsonschema\n\
                  given = json.load(sys.stdin)\n\
                  validator = jsonschema.Draft202012Validator(given['schema'])\n\
                  errors = [f'{e[\"event\"]}: {x.message}' for e in given['events'] \
                            for x in validator.iter_errors(e)]\n\
                  print('\\n'.join(errors))\n\
                  sys.exit(1 if errors else 0)\n";
    let mut check = tokio::process::Command::new(common::venv_python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the project's Python runs");
    let input = serde_json::to_vec(&json!({"schema": schema, "events": events})).unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = check.stdin.take().unwrap();
    stdin.write_all(&input).await.unwrap();
    drop(stdin);
    let output = check.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "events that do not match the documented schema {schema}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
