//! The task domain through the gateway: state machine, ETags, history, assignment, events and
//! authorisation on every object.

mod common;

use common::{App, WAIT};
use reqwest::Method;
use serde_json::{json, Value};
use shared::testkit::eventually;

async fn outbox_count(app: &App, routing_key: &str) -> i64 {
    let pool = app.db(&app.env.config.task.database).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE routing_key = $1")
        .bind(routing_key)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn patch(app: &App, token: &str, id: &str, etag: Option<&str>, body: Value) -> common::Reply {
    let mut request = app
        .http
        .patch(format!("{}/api/v1/tasks/{id}", app.api))
        .bearer_auth(token)
        .json(&body);
    if let Some(etag) = etag {
        request = request.header("if-match", etag);
    }
    common::Reply::read(request.send().await.unwrap()).await
}

async fn user_id(app: &App, token: &str) -> String {
    app.get("/api/v1/users/me", Some(token)).await.1["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_state_machine_names_the_allowed_moves() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let (_, task) = app
        .post("/api/v1/tasks", Some(&token), json!({"title": "Ship it"}))
        .await;
    let id = task["id"].as_str().unwrap();
    for to in ["in_progress", "done"] {
        let reply = patch(&app, &token, id, None, json!({"status": to})).await;
        assert_eq!(reply.status, 200, "{to}: {:?}", reply.body);
    }
    let refused = patch(&app, &token, id, None, json!({"status": "in_progress"})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "forbidden_transition")
    );
    assert!(
        refused.text("detail").contains("todo"),
        "{:?}",
        refused.body
    );
    let reopened = patch(&app, &token, id, None, json!({"status": "todo"})).await;
    assert_eq!(reopened.status, 200);
    assert_eq!(outbox_count(&app, "task.completed").await, 1);
    assert_eq!(outbox_count(&app, "task.status_changed").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_etag_is_412_and_changes_nothing() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let (_, task) = app
        .post("/api/v1/tasks", Some(&token), json!({"title": "v1"}))
        .await;
    let id = task["id"].as_str().unwrap().to_string();
    let read = app
        .send(
            Method::GET,
            &format!("/api/v1/tasks/{id}"),
            Some(&token),
            None,
        )
        .await;
    let first = read.headers["etag"].to_str().unwrap().to_string();
    let updated = patch(&app, &token, &id, Some(&first), json!({"title": "v2"})).await;
    assert_eq!(updated.status, 200);
    let second = updated.headers["etag"].to_str().unwrap().to_string();
    assert_ne!(first, second);
    let events = outbox_count(&app, "task.updated").await;

    let stale = patch(
        &app,
        &token,
        &id,
        Some(&first),
        json!({"title": "lost update"}),
    )
    .await;
    assert_eq!((stale.status, stale.code()), (412, "stale_version"));
    let delete = app
        .http
        .delete(format!("{}/api/v1/tasks/{id}", app.api))
        .bearer_auth(&token)
        .header("if-match", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status().as_u16(), 412);
    let (_, now) = app.get(&format!("/api/v1/tasks/{id}"), Some(&token)).await;
    assert_eq!(now["title"], "v2");
    assert_eq!(
        outbox_count(&app, "task.updated").await,
        events,
        "no event for a refused change"
    );

    let history = app
        .get(&format!("/api/v1/tasks/{id}/history"), Some(&token))
        .await
        .1;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["changes"]["title"],
        json!({"from": "v1", "to": "v2"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_members_token_gets_404_on_every_task_route_and_changes_nothing() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let (_, task) = app
        .post("/api/v1/tasks", Some(&ada), json!({"title": "Private"}))
        .await;
    let id = task["id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/v1/tasks/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{id}"),
            Some(json!({"title": "pwned"})),
        ),
        (Method::DELETE, format!("/api/v1/tasks/{id}"), None),
        (Method::GET, format!("/api/v1/tasks/{id}/history"), None),
    ] {
        let reply = app.send(method.clone(), &path, Some(&eve), body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {:?}", reply.body);
    }
    let (_, still) = app.get(&format!("/api/v1/tasks/{id}"), Some(&ada)).await;
    assert_eq!(
        (still["title"].as_str(), still["version"].as_i64()),
        (Some("Private"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignee_sees_the_task_changes_only_its_status_and_is_unassigned_when_deleted() {
    let app =
        App::start_with(|c| c.auth.bootstrap_admin_email = Some("admin@example.com".into())).await;
    let admin = app.sign_up_verified("admin@example.com").await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let bob_id = user_id(&app, &bob).await;
    let (_, task) = app
        .post("/api/v1/tasks", Some(&ada), json!({"title": "Review"}))
        .await;
    let id = task["id"].as_str().unwrap().to_string();

    // task-svc learns about bob from user.created.
    let assigned = eventually("bob to be assignable", WAIT, || async {
        let reply = patch(&app, &ada, &id, None, json!({"assignee_id": bob_id})).await;
        (reply.status == 200).then_some(reply)
    })
    .await;
    assert_eq!(assigned.body["assignee_id"], bob_id.as_str());
    assert_eq!(outbox_count(&app, "task.assigned").await, 1);
    let unknown = patch(
        &app,
        &ada,
        &id,
        None,
        json!({"assignee_id": uuid::Uuid::now_v7()}),
    )
    .await;
    assert_eq!((unknown.status, unknown.code()), (422, "unknown_assignee"));

    assert_eq!(
        app.get(&format!("/api/v1/tasks/{id}"), Some(&bob)).await.0,
        200
    );
    let listed = app.get("/api/v1/tasks", Some(&bob)).await.1;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let moved = patch(&app, &bob, &id, None, json!({"status": "in_progress"})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let renamed = patch(&app, &bob, &id, None, json!({"title": "Mine now"})).await;
    assert_eq!(renamed.status, 403);

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/users/{bob_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    let task = eventually("the deleted user to be unassigned", WAIT, || async {
        let (_, task) = app.get(&format!("/api/v1/tasks/{id}"), Some(&ada)).await;
        task["assignee_id"].is_null().then_some(task)
    })
    .await;
    assert_eq!(task["status"], "in_progress");
    let history = app
        .get(&format!("/api/v1/tasks/{id}/history"), Some(&ada))
        .await
        .1;
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor_id"], uuid::Uuid::nil().to_string());
    assert_eq!(last["changes"]["assignee_id"]["to"], Value::Null);
}

/// A calendar feed: its address needs no token and carries the person's dated tasks (owned or
/// assigned) as VTODOs, nobody else's and no undated one; a new feed stops the old address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_feed_serves_my_dated_tasks_without_a_token_until_replaced() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let ada_id = user_id(&app, &ada).await;
    let dated = |title: &str| json!({"title": title, "due_at": "2026-12-24T17:00:00Z"});
    for (token, task) in [
        (&ada, dated("Wrap the gifts; all, of them")),
        (&ada, json!({"title": "Someday"})),
        (&bob, dated("Bob's own")),
    ] {
        assert_eq!(app.post("/api/v1/tasks", Some(token), task).await.0, 201);
    }
    let mut for_ada = dated("Bob asks Ada");
    for_ada["assignee_id"] = json!(ada_id);
    eventually("Ada is assignable", WAIT, || async {
        let (status, _) = app.post("/api/v1/tasks", Some(&bob), for_ada.clone()).await;
        (status == 201).then_some(())
    })
    .await;

    let path_of = |feed: &Value| {
        let url = url::Url::parse(feed["url"].as_str().unwrap()).unwrap();
        assert!(url.path().ends_with(".ics"), "{url}");
        url.path().to_string()
    };
    let (status, feed) = app
        .post("/api/v1/calendar/feed", Some(&ada), json!({}))
        .await;
    assert_eq!(status, 201, "{feed}");
    let first = path_of(&feed);
    let answer = reqwest::get(format!("{}{first}", app.api)).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "text/calendar; charset=utf-8"
    );
    let ics = answer.text().await.unwrap();
    assert!(
        ics.starts_with("BEGIN:VCALENDAR\r\n") && ics.ends_with("END:VCALENDAR\r\n"),
        "{ics}"
    );
    let summaries: Vec<&str> = ics
        .lines()
        .filter_map(|l| l.strip_prefix("SUMMARY:"))
        .collect();
    let mut summaries: Vec<String> = summaries.iter().map(|s| s.trim_end().to_string()).collect();
    summaries.sort();
    assert_eq!(
        summaries,
        ["Bob asks Ada", "Wrap the gifts\\; all\\, of them"]
    );
    assert_eq!(ics.matches("DUE:20261224T170000Z").count(), 2);

    let (_, again) = app
        .post("/api/v1/calendar/feed", Some(&ada), json!({}))
        .await;
    let second = path_of(&again);
    assert_ne!(first, second);
    let status = |path: String| async move { reqwest::get(path).await.unwrap().status() };
    assert_eq!(
        status(format!("{}{first}", app.api)).await,
        404,
        "the old address stops working"
    );
    assert_eq!(status(format!("{}{second}", app.api)).await, 200);
    assert_eq!(
        status(format!("{}/api/v1/calendar/nope.ics", app.api)).await,
        404
    );
    assert_eq!(
        status(format!("{}/api/v1/calendar/feed", app.api)).await,
        401
    );
}

/// A channel's members, by name, for its members only: the owner first, then the others by
/// name; a non-member gets 404, and a removed member leaves the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channels_members_are_listed_by_name_to_its_members_only() {
    let app = App::start().await;
    let zoe = app.sign_up_as("zoe@example.com", "Zoe").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let eve = app.sign_up_as("eve@example.com", "Eve").await;
    let (status, channel) = app
        .post("/api/v1/channels", Some(&zoe), json!({"name": "Ops"}))
        .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_str().unwrap();
    for member in [&bob, &ada] {
        let code = json!({"code": channel["join_code"]});
        let (status, _) = app.post("/api/v1/channels/join", Some(member), code).await;
        assert_eq!(status, 200);
    }
    let path = format!("/api/v1/channels/{id}/members");
    let names = |list: &Value| -> Vec<(String, bool)> {
        let items = list["items"].as_array().unwrap();
        let name = |m: &Value| m["display_name"].as_str().unwrap().to_string();
        items
            .iter()
            .map(|m| (name(m), m["owner"] == true))
            .collect()
    };
    // Names come with user.created, which task-svc may not have handled yet.
    let listed = eventually("every member named", WAIT, || async {
        let (status, list) = app.get(&path, Some(&bob)).await;
        assert_eq!(status, 200, "{list}");
        names(&list)
            .iter()
            .all(|(n, _)| !n.is_empty())
            .then_some(list)
    })
    .await;
    let expected = [("Zoe", true), ("Ada", false), ("Bob", false)];
    let expected: Vec<(String, bool)> = expected.map(|(n, o)| (n.to_string(), o)).to_vec();
    assert_eq!(names(&listed), expected);
    assert_eq!(app.get(&path, Some(&eve)).await.0, 404);
    assert_eq!(
        app.get("/api/v1/channels/nope/members", Some(&zoe)).await.0,
        404
    );

    let bob_id = user_id(&app, &bob).await;
    let removed = app
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{id}/members/{bob_id}"),
            Some(&zoe),
            None,
        )
        .await;
    assert_eq!(removed.status, 204);
    let (_, list) = app.get(&path, Some(&ada)).await;
    assert_eq!(names(&list), expected[..2].to_vec());
    assert_eq!(app.get(&path, Some(&bob)).await.0, 404);
}

/// The person picker's search (`GET /api/v1/users/search`): names among people who share a
/// channel with the caller, the name's start ranked first, and anyone by exact address; names
/// for ids (`GET /api/v1/people?ids=`) only of people the caller may see; history by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_found_by_name_among_channel_mates_and_by_exact_email_for_anyone() {
    let app = App::start().await;
    let zoe = app.sign_up_as("zoe@example.com", "Zoe").await;
    let ada = app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let bob = app.sign_up_as("bob@example.com", "Bob Adams").await;
    let eve = app.sign_up_as("eve@example.com", "Ada Eve").await;
    let (_, channel) = app
        .post("/api/v1/channels", Some(&zoe), json!({"name": "Ops"}))
        .await;
    for member in [&ada, &bob] {
        let code = json!({"code": channel["join_code"]});
        assert_eq!(
            app.post("/api/v1/channels/join", Some(member), code)
                .await
                .0,
            200
        );
    }
    let names = |list: &Value| -> Vec<String> {
        let items = list["items"].as_array().unwrap();
        let name = |p: &Value| p["display_name"].as_str().unwrap().to_string();
        items.iter().map(name).collect()
    };
    // Names come with user.created, which task-svc may not have handled yet.
    let found = eventually("both named", WAIT, || async {
        let (status, list) = app.get("/api/v1/users/search?q=ada", Some(&bob)).await;
        assert_eq!(status, 200, "{list}");
        (names(&list).len() == 2).then_some(list)
    })
    .await;
    assert_eq!(names(&found), ["Ada Lovelace", "Bob Adams"], "not Ada Eve");
    assert!(found["items"][0]["id"].is_string() && found["items"][0]["active"] == true);
    let (_, none) = app.get("/api/v1/users/search?q=eve", Some(&bob)).await;
    assert_eq!(names(&none), Vec::<String>::new(), "Eve shares no channel");
    for address in ["eve@example.com", "EVE%40Example.com"] {
        let (status, list) = app
            .get(&format!("/api/v1/users/search?q={address}"), Some(&bob))
            .await;
        assert_eq!((status, names(&list)), (200, vec!["Ada Eve".to_string()]));
    }
    let (status, one) = app
        .get("/api/v1/users/by-email?email=eve@example.com", Some(&bob))
        .await;
    assert_eq!(
        (status, one["display_name"].as_str()),
        (200, Some("Ada Eve"))
    );
    let missing = app.get("/api/v1/users/by-email?email=x@example.com", Some(&bob));
    assert_eq!(missing.await.0, 404);
    for bad in ["", "q=", "q=%20", &format!("q={}", "x".repeat(101))] {
        let reply = app
            .send(
                Method::GET,
                &format!("/api/v1/users/search?{bad}"),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "invalid_query"),
            "{bad}"
        );
    }
    assert_eq!(app.get("/api/v1/users/search?q=ada", None).await.0, 401);

    // Names for ids: a channel mate's, not a stranger's until she assigns Bob a task.
    let (zoe_id, eve_id) = (app.user_id(&zoe).await, app.user_id(&eve).await);
    let (app, bob) = (&app, &bob);
    let named = |ids: String| async move {
        let (status, list) = app
            .get(&format!("/api/v1/people?ids={ids}"), Some(bob))
            .await;
        assert_eq!(status, 200, "{list}");
        names(&list)
    };
    assert_eq!(named(format!("{zoe_id},{eve_id}")).await, ["Zoe"]);
    let bob_id = app.user_id(bob).await;
    let task = json!({"title": "Review", "assignee_id": bob_id});
    let (status, task) = app.post("/api/v1/tasks", Some(&eve), task).await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(
        named(format!("{zoe_id},{eve_id}")).await,
        ["Ada Eve", "Zoe"]
    );
    let reply = app
        .send(Method::GET, "/api/v1/people?ids=nope", Some(bob), None)
        .await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_query"));

    // History says who, by name.
    let id = task["id"].as_str().unwrap();
    let moved = patch(app, bob, id, None, json!({"status": "in_progress"})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let (_, history) = app
        .get(&format!("/api/v1/tasks/{id}/history"), Some(&eve))
        .await;
    let actors: Vec<&str> = history
        .as_array()
        .or(history["items"].as_array())
        .unwrap()
        .iter()
        .map(|h| h["actor_name"].as_str().unwrap())
        .collect();
    assert_eq!(actors.last(), Some(&"Bob Adams"), "{history}");
}

/// Who each `task.mentioned` in the outbox named, oldest first.
async fn mentioned(app: &App) -> Vec<String> {
    let pool = app.db(&app.env.config.task.database).await;
    let named = sqlx::query_scalar(
        "SELECT payload->'data'->>'mentioned_id' FROM outbox_messages
          WHERE routing_key = 'task.mentioned' ORDER BY seq, position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    named
}

/// Comments: anyone who can see the task reads and writes them (Markdown rendered safe); only
/// the author edits, the author or an admin deletes; `@Name` of someone who can see the task
/// tells them once per comment (a `task.mentioned`, then a notification); others are not told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_for_the_tasks_audience_and_mentions_tell_who_can_see_it() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let bob = app.sign_up_as("bob@example.com", "Bob Stone").await;
    let eve = app.sign_up_as("eve@example.com", "Eve").await;
    let channel = app.shared_channel(&ada, &bob, "Ops").await;
    let task = json!({"title": "Fix the roof", "channel_id": channel["id"]});
    let (_, task) = app.post("/api/v1/tasks", Some(&ada), task).await;
    let path = format!("/api/v1/tasks/{}/comments", task["id"].as_str().unwrap());
    let ada_id = app.user_id(&ada).await;
    // Names come with user.created, which task-svc may not have handled yet.
    eventually("Ada named", WAIT, || async {
        let (_, list) = app
            .get(&format!("/api/v1/people?ids={ada_id}"), Some(&bob))
            .await;
        (list["items"][0]["display_name"] == "Ada Lovelace").then_some(())
    })
    .await;

    let body = "**Looks** good <script>alert(1)</script> @ada lovelace, and @Eve too";
    let (status, comment) = app.post(&path, Some(&bob), json!({ "body": body })).await;
    assert_eq!(status, 201, "{comment}");
    let html = comment["body_html"].as_str().unwrap();
    assert!(
        html.contains("<strong>Looks</strong>") && !html.contains("<script"),
        "{html}"
    );
    assert_eq!(comment["author_name"], "Bob Stone");
    assert_eq!(
        mentioned(&app).await,
        std::slice::from_ref(&ada_id),
        "Eve cannot see the task"
    );
    let notified = eventually("Ada told", WAIT, || async {
        let items = app.notifications(&ada).await;
        items.into_iter().find(|n| n["kind"] == "task.mentioned")
    })
    .await;
    assert_eq!(
        notified["title"],
        "Bob Stone mentioned you on “Fix the roof”"
    );

    // Eve sees neither the task nor its comments.
    assert_eq!(app.get(&path, Some(&eve)).await.0, 404);
    let eve_says = app.post(&path, Some(&eve), json!({"body": "hi"})).await;
    assert_eq!(eve_says.0, 404);
    let (status, list) = app.get(&path, Some(&ada)).await;
    assert_eq!((status, list["items"].as_array().unwrap().len()), (200, 1));
    let empty = app
        .send(Method::POST, &path, Some(&ada), Some(json!({"body": "  "})))
        .await;
    assert_eq!((empty.status, empty.code()), (422, "invalid_comment"));

    // Only Bob edits his comment; naming Ada again tells her nothing new.
    let one = format!("{path}/{}", comment["id"].as_str().unwrap());
    let edit = json!({"body": "Looks fine, @Ada Lovelace"});
    let refused = app
        .send(Method::PATCH, &one, Some(&ada), Some(edit.clone()))
        .await;
    assert_eq!(refused.status, 403);
    let edited = app.send(Method::PATCH, &one, Some(&bob), Some(edit)).await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    assert!(edited.body["edited_at"].is_string());
    assert_eq!(mentioned(&app).await.len(), 1);
    // Only Bob (or an admin) deletes it.
    assert_eq!(
        app.send(Method::DELETE, &one, Some(&ada), None)
            .await
            .status,
        403
    );
    assert_eq!(
        app.send(Method::DELETE, &one, Some(&bob), None)
            .await
            .status,
        204
    );
    let (_, list) = app.get(&path, Some(&bob)).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(
        app.send(Method::DELETE, &one, Some(&bob), None)
            .await
            .status,
        404
    );
}

/// Labels: a person's own and a channel's (its members add them, its owner recolours and
/// deletes them); a label is a tag's colour, so the list filters by it like a tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_colour_tags_for_a_person_or_a_channel_and_filter_the_list() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let eve = app.sign_up_as("eve@example.com", "Eve").await;
    let channel = app.shared_channel(&ada, &bob, "Ops").await;
    let (status, roof) = app
        .post(
            "/api/v1/labels",
            Some(&ada),
            json!({"name": " Roof ", "color": "#FF0000"}),
        )
        .await;
    assert_eq!(status, 201, "{roof}");
    assert_eq!(
        (&roof["name"], &roof["color"]),
        (&json!("roof"), &json!("#ff0000"))
    );
    let again = json!({"name": "ROOF", "color": "#00ff00"});
    let reply = app
        .send(Method::POST, "/api/v1/labels", Some(&ada), Some(again))
        .await;
    assert_eq!((reply.status, reply.code()), (409, "label_exists"));
    let bad = json!({"name": "x", "color": "red"});
    let reply = app
        .send(Method::POST, "/api/v1/labels", Some(&ada), Some(bad))
        .await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_color"));
    let shared = json!({"name": "ops", "color": "#0b5cad", "channel_id": channel["id"]});
    let (status, ops) = app.post("/api/v1/labels", Some(&bob), shared.clone()).await;
    assert_eq!(status, 201, "{ops}");
    assert_eq!(app.post("/api/v1/labels", Some(&eve), shared).await.0, 404);
    let names = |list: Value| -> Vec<String> {
        let items = list["items"].as_array().unwrap().iter();
        items
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(app.get("/api/v1/labels", Some(&ada)).await.1),
        ["ops", "roof"]
    );
    assert_eq!(
        names(app.get("/api/v1/labels", Some(&bob)).await.1),
        ["ops"]
    );
    assert_eq!(
        names(app.get("/api/v1/labels", Some(&eve)).await.1),
        Vec::<String>::new()
    );
    // The channel's owner recolours and deletes its labels; a member does not.
    let path = format!("/api/v1/labels/{}", ops["id"].as_str().unwrap());
    let blue = json!({"color": "#0000ff"});
    let reply = app
        .send(Method::PATCH, &path, Some(&bob), Some(blue.clone()))
        .await;
    assert_eq!(reply.status, 403);
    let reply = app.send(Method::PATCH, &path, Some(&ada), Some(blue)).await;
    assert_eq!(
        (reply.status, reply.body["color"].as_str()),
        (200, Some("#0000ff"))
    );
    let roof_path = format!("/api/v1/labels/{}", roof["id"].as_str().unwrap());
    assert_eq!(
        app.send(Method::DELETE, &roof_path, Some(&bob), None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.send(Method::DELETE, &path, Some(&bob), None)
            .await
            .status,
        403
    );
    assert_eq!(
        app.send(Method::DELETE, &path, Some(&ada), None)
            .await
            .status,
        204
    );
    // The list filters by a label like a tag.
    for (title, tags) in [("Fix the roof", json!(["roof"])), ("Sweep", json!([]))] {
        let task = json!({"title": title, "tags": tags});
        assert_eq!(app.post("/api/v1/tasks", Some(&ada), task).await.0, 201);
    }
    let (_, list) = app.get("/api/v1/tasks?tag=ROOF", Some(&ada)).await;
    let titles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Fix the roof"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_share_tasks_with_members_only_and_the_owner_controls_membership() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let bob_id = user_id(&app, &bob).await;

    let (status, channel) = app
        .post("/api/v1/channels", Some(&ada), json!({"name": "Ops"}))
        .await;
    assert_eq!(status, 201, "{channel}");
    let channel_id = channel["id"].as_str().unwrap().to_string();
    let code = channel["join_code"].as_str().unwrap().to_string();
    let (status, joined) = app
        .post(
            "/api/v1/channels/join",
            Some(&bob),
            json!({"code": code.to_lowercase()}),
        )
        .await;
    assert_eq!(status, 200, "{joined}");
    assert!(
        joined["join_code"].is_null(),
        "only the owner sees the code"
    );
    assert_eq!(joined["members"], 2);
    app.post("/api/v1/channels/join", Some(&bob), json!({"code": code}))
        .await;
    assert_eq!(
        outbox_count(&app, "channel.joined").await,
        1,
        "joining twice is one event"
    );

    let (_, shared) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "Rotate keys", "channel_id": channel_id}),
        )
        .await;
    let shared_id = shared["id"].as_str().unwrap().to_string();
    let (_, bobs) = app
        .post(
            "/api/v1/tasks",
            Some(&bob),
            json!({"title": "Bob's", "channel_id": channel_id}),
        )
        .await;
    let bobs_id = bobs["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{shared_id}"), Some(&bob))
            .await
            .0,
        200
    );
    let listed = app
        .get(
            &format!("/api/v1/tasks?channel_id={channel_id}"),
            Some(&bob),
        )
        .await
        .1;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        patch(&app, &bob, &shared_id, None, json!({"title": "x"}))
            .await
            .status,
        403
    );
    assert_eq!(
        patch(
            &app,
            &ada,
            &bobs_id,
            None,
            json!({"title": "Edited by the channel owner"})
        )
        .await
        .status,
        200
    );

    // A non-member: 404 on every channel and task route, and cannot post into the channel.
    for path in [
        format!("/api/v1/channels/{channel_id}"),
        format!("/api/v1/tasks/{shared_id}"),
        format!("/api/v1/tasks/{shared_id}/history"),
    ] {
        assert_eq!(app.get(&path, Some(&eve)).await.0, 404, "{path}");
    }
    for (method, path) in [
        (Method::POST, format!("/api/v1/channels/{channel_id}/leave")),
        (
            Method::POST,
            format!("/api/v1/channels/{channel_id}/rotate-code"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/channels/{channel_id}/members/{bob_id}"),
        ),
    ] {
        assert_eq!(
            app.send(method, &path, Some(&eve), None).await.status,
            404,
            "{path}"
        );
    }
    let (status, _) = app
        .post(
            "/api/v1/tasks",
            Some(&eve),
            json!({"title": "Spam", "channel_id": channel_id}),
        )
        .await;
    assert_eq!(status, 404);

    // Only the owner rotates the code; the old code stops working.
    let refused = app
        .send(
            Method::POST,
            &format!("/api/v1/channels/{channel_id}/rotate-code"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(refused.status, 403);
    let rotated = app
        .send(
            Method::POST,
            &format!("/api/v1/channels/{channel_id}/rotate-code"),
            Some(&ada),
            None,
        )
        .await;
    assert_ne!(rotated.text("join_code"), code);
    let (status, _) = app
        .post("/api/v1/channels/join", Some(&eve), json!({"code": code}))
        .await;
    assert_eq!(status, 404);

    // Removed, bob loses the channel's tasks (but keeps nothing he could read through it).
    let removed = app
        .send(
            Method::DELETE,
            &format!("/api/v1/channels/{channel_id}/members/{bob_id}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(removed.status, 204);
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{shared_id}"), Some(&bob))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(&format!("/api/v1/channels/{channel_id}"), Some(&bob))
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_have_no_duplicates_or_gaps_while_tasks_are_inserted_between_them() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let mut created = Vec::new();
    for i in 0..7 {
        let (_, task) = app
            .post(
                "/api/v1/tasks",
                Some(&token),
                json!({"title": format!("t{i}")}),
            )
            .await;
        created.push(task["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tasks?limit=3&cursor={c}"),
            None => "/api/v1/tasks?limit=3".to_string(),
        };
        let (status, page) = app.get(&path, Some(&token)).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        if pages == 1 {
            // New tasks arrive between pages.
            for i in 0..2 {
                app.post(
                    "/api/v1/tasks",
                    Some(&token),
                    json!({"title": format!("late{i}")}),
                )
                .await;
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "every task once, newest first");
    assert_eq!(pages, 3);
    let (status, problem) = app.get("/api/v1/tasks?cursor=garbage", Some(&token)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_combine() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    for (title, priority, tags) in [
        ("Fix the login bug", "urgent", vec!["auth"]),
        ("Write docs", "low", vec!["docs"]),
        ("Login page copy", "low", vec!["docs", "auth"]),
    ] {
        app.post(
            "/api/v1/tasks",
            Some(&token),
            json!({"title": title, "priority": priority, "tags": tags}),
        )
        .await;
    }
    let titles = |page: Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        titles(
            app.get("/api/v1/tasks?tag=auth&priority=low", Some(&token))
                .await
                .1
        ),
        ["Login page copy"]
    );
    assert_eq!(
        titles(app.get("/api/v1/tasks?q=LOGIN", Some(&token)).await.1),
        ["Login page copy", "Fix the login bug"]
    );
    assert_eq!(
        titles(app.get("/api/v1/tasks?q=100%25", Some(&token)).await.1),
        Vec::<String>::new()
    );
    assert_eq!(
        app.get("/api/v1/tasks?colour=red", Some(&token)).await.0,
        400
    );
}

/// The pending `task.due_soon` rows: when each becomes available.
async fn pending_reminders(app: &App) -> Vec<chrono::DateTime<chrono::Utc>> {
    let pool = app.db(&app.env.config.task.database).await;
    let rows = sqlx::query_scalar(
        "SELECT available_at FROM outbox_messages
          WHERE routing_key = 'task.due_soon' AND published_at IS NULL ORDER BY available_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_due_soon_reminder_fires_once_moves_with_the_due_date_and_is_dropped_when_done() {
    let lead = 3600;
    let app = App::start_with(|c| c.tasks.due_soon_lead_secs = lead).await;
    let token = app.sign_up("ada@example.com").await;
    let now = chrono::Utc::now();

    // Due in a lead time and a second: the reminder falls due in about a second.
    let due = now + chrono::Duration::seconds(lead as i64 + 1);
    let (_, soon) = app
        .post(
            "/api/v1/tasks",
            Some(&token),
            json!({"title": "Renew cert", "due_at": due}),
        )
        .await;
    let soon_id = soon["id"].as_str().unwrap().to_string();
    let reminders = eventually("one due-soon notification", WAIT, || async {
        let notes = app.notifications(&token).await;
        let due: Vec<Value> = notes
            .into_iter()
            .filter(|n| n["kind"] == "task.due_soon")
            .collect();
        (!due.is_empty()).then_some(due)
    })
    .await;
    assert_eq!(reminders.len(), 1);
    assert_eq!(reminders[0]["subject"], soon_id.as_str());
    assert!(
        chrono::Utc::now() >= due - chrono::Duration::seconds(lead as i64),
        "not early"
    );

    // A later task: its reminder waits; moving the due date moves it; finishing drops it.
    let later = now + chrono::Duration::days(2);
    let (_, task) = app
        .post(
            "/api/v1/tasks",
            Some(&token),
            json!({"title": "Quarterly report", "due_at": later}),
        )
        .await;
    let id = task["id"].as_str().unwrap().to_string();
    let expected = later - chrono::Duration::seconds(lead as i64);
    let pending = pending_reminders(&app).await;
    assert_eq!(pending.len(), 1);
    assert!(
        (pending[0] - expected).num_milliseconds().abs() < 1000,
        "{pending:?} vs {expected}"
    );

    let moved_to = now + chrono::Duration::days(5);
    assert_eq!(
        patch(&app, &token, &id, None, json!({"due_at": moved_to}))
            .await
            .status,
        200
    );
    let pending = pending_reminders(&app).await;
    let expected = moved_to - chrono::Duration::seconds(lead as i64);
    assert_eq!(pending.len(), 1, "the old reminder is gone");
    assert!((pending[0] - expected).num_milliseconds().abs() < 1000);

    assert_eq!(
        patch(&app, &token, &id, None, json!({"status": "done"}))
            .await
            .status,
        200
    );
    assert!(
        pending_reminders(&app).await.is_empty(),
        "a done task has no reminder"
    );
    // The first reminder was published exactly once.
    assert_eq!(outbox_count(&app, "task.due_soon").await, 1);
}

async fn cached_pages(app: &App) -> usize {
    use secrecy::ExposeSecret;
    let client = redis::Client::open(app.env.config.redis.url.expose_secret()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}tasks:list:*", app.env.config.redis.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_lists_never_show_a_stale_page_after_a_write() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let titles = |page: Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, channel) = app
        .post("/api/v1/channels", Some(&ada), json!({"name": "Team"}))
        .await;
    let code = channel["join_code"].as_str().unwrap();
    app.post("/api/v1/channels/join", Some(&bob), json!({"code": code}))
        .await;

    assert!(titles(app.get("/api/v1/tasks", Some(&bob)).await.1).is_empty());
    assert!(titles(app.get("/api/v1/tasks", Some(&ada)).await.1).is_empty());
    assert_eq!(cached_pages(&app).await, 2, "both first pages are cached");

    let (_, task) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "Shared", "channel_id": channel["id"]}),
        )
        .await;
    assert_eq!(
        titles(app.get("/api/v1/tasks", Some(&ada)).await.1),
        ["Shared"]
    );
    assert_eq!(
        titles(app.get("/api/v1/tasks", Some(&bob)).await.1),
        ["Shared"],
        "a member's list too"
    );

    let id = task["id"].as_str().unwrap();
    patch(&app, &ada, id, None, json!({"title": "Renamed"})).await;
    assert_eq!(
        titles(app.get("/api/v1/tasks", Some(&bob)).await.1),
        ["Renamed"]
    );
    app.send(
        Method::DELETE,
        &format!("/api/v1/tasks/{id}"),
        Some(&ada),
        None,
    )
    .await;
    assert!(titles(app.get("/api/v1/tasks", Some(&bob)).await.1).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicted_priorities_beat_the_majority_baseline_once_trained() {
    let app =
        App::start_with(|c| c.auth.bootstrap_admin_email = Some("admin@example.com".into())).await;
    let admin = app.sign_up_verified("admin@example.com").await;
    let ada = app.sign_up("ada@example.com").await;

    // Before any data: the heuristic decides, and says so.
    let (_, first) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "Prod is down"}),
        )
        .await;
    assert_eq!(
        (
            first["priority"].as_str(),
            first["priority_source"].as_str()
        ),
        (Some("urgent"), Some("heuristic"))
    );
    assert_eq!(
        app.get("/api/v1/tasks/priority-model", Some(&admin))
            .await
            .0,
        404
    );

    // A generated history with a learnable signal: the words say the priority, and "normal"
    // is the majority (the baseline to beat).
    let kinds = [
        ("normal", ["sync", "agenda", "notes", "review", "weekly"]),
        ("low", ["archive", "tidy", "someday", "catalogue", "rename"]),
        (
            "urgent",
            ["pager", "incident", "breach", "rollback", "hotfix"],
        ),
        (
            "high",
            ["customer", "deadline", "contract", "escalation", "release"],
        ),
    ];
    let mut n = 0;
    for round in 0..12 {
        for (i, (label, words)) in kinds.iter().enumerate() {
            let copies = if *label == "normal" { 2 } else { 1 };
            for c in 0..copies {
                let title = format!(
                    "{} {} item {}",
                    words[(round + c) % 5],
                    words[(round + c + i) % 5],
                    n
                );
                let (status, _) = app
                    .post(
                        "/api/v1/tasks",
                        Some(&ada),
                        json!({"title": title, "priority": label}),
                    )
                    .await;
                assert_eq!(status, 201);
                n += 1;
            }
        }
    }
    // Automated tasks are not labels: a program's priorities say nothing about words.
    let jobs: Vec<Value> = (0..20)
        .map(|i| json!({"title": format!("pager sync {i}"), "priority": "low", "job": {"kind": "noop"}}))
        .collect();
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": jobs }))
        .await;
    assert_eq!(status, 201, "{body}");
    let refused = app
        .send(
            Method::POST,
            "/api/v1/tasks/priority-model/retrain",
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(refused.status, 403);
    let report = app
        .send(
            Method::POST,
            "/api/v1/tasks/priority-model/retrain",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    let accuracy = report.body["accuracy"].as_f64().unwrap();
    let baseline = report.body["baseline_accuracy"].as_f64().unwrap();
    assert!(
        accuracy > baseline,
        "model {accuracy} vs majority {baseline}"
    );
    assert_eq!(report.body["samples"], n);
    assert_eq!(report.body["in_use"], true);

    let (_, predicted) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "pager incident again"}),
        )
        .await;
    assert_eq!(
        (
            predicted["priority"].as_str(),
            predicted["priority_source"].as_str()
        ),
        (Some("urgent"), Some("model"))
    );
    let (_, predicted) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "archive and tidy"}),
        )
        .await;
    assert_eq!(predicted["priority"], "low");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sort_by_due_date_and_priority_across_pages() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let now = chrono::Utc::now();
    for (title, priority, due_days) in [
        ("a", "low", Some(3)),
        ("b", "urgent", None),
        ("c", "normal", Some(1)),
        ("d", "high", Some(2)),
        ("e", "urgent", Some(5)),
    ] {
        let due = due_days.map(|d| now + chrono::Duration::days(d));
        app.post(
            "/api/v1/tasks",
            Some(&token),
            json!({"title": title, "priority": priority, "due_at": due}),
        )
        .await;
    }
    let walk = |sort: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let mut titles = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/api/v1/tasks?limit=2&sort={sort}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let (status, page) = app.get(&path, Some(&token)).await;
                assert_eq!(status, 200, "{page}");
                titles.extend(
                    page["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t["title"].as_str().unwrap().to_string()),
                );
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => return titles,
                }
            }
        }
    };
    assert_eq!(walk("due_at").await, ["c", "d", "a", "e", "b"]);
    // Urgent first (the newer urgent one first), then high, normal, low.
    assert_eq!(walk("-priority").await, ["e", "b", "d", "c", "a"]);
    assert_eq!(walk("created_at").await, ["a", "b", "c", "d", "e"]);
    let (status, _) = app.get("/api/v1/tasks?sort=colour", Some(&token)).await;
    assert_eq!(status, 400);
    // A cursor of one order is refused by another.
    let (_, page) = app
        .get("/api/v1/tasks?limit=2&sort=due_at", Some(&token))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, problem) = app
        .get(
            &format!("/api/v1/tasks?limit=2&cursor={cursor}"),
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}

/// The `data` of every outbox event of `routing_key` for `task_id`, oldest first.
async fn payloads(app: &App, routing_key: &str, task_id: &str) -> Vec<Value> {
    let pool = app.db(&app.env.config.task.database).await;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox_messages WHERE routing_key = $1 AND payload->>'subject' = $2 ORDER BY seq, position",
    )
    .bind(routing_key)
    .bind(task_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().map(|p| p["data"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_publishes_its_events_once_with_the_right_payload() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let (ada_id, bob_id) = (user_id(&app, &ada).await, user_id(&app, &bob).await);
    eventually("task-svc to know bob", WAIT, || async {
        let (status, task) = app
            .post(
                "/api/v1/tasks",
                Some(&ada),
                json!({"title": "probe", "assignee_id": bob_id}),
            )
            .await;
        (status == 201).then_some(task)
    })
    .await;
    let (_, task) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "Ship", "assignee_id": bob_id, "priority": "high"}),
        )
        .await;
    let id = task["id"].as_str().unwrap().to_string();
    let created = payloads(&app, "task.created", &id).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["owner_id"], ada_id.as_str());
    assert_eq!(created[0]["assignee_id"], bob_id.as_str());
    assert_eq!(created[0]["priority"], "high");
    let assigned = payloads(&app, "task.assigned", &id).await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["assignee_id"], bob_id.as_str());
    assert!(assigned[0]["previous_assignee_id"].is_null());

    patch(&app, &ada, &id, None, json!({"title": "Ship it"})).await;
    let updated = payloads(&app, "task.updated", &id).await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["changed"], json!(["title"]));
    assert_eq!(updated[0]["version"], 2);
    assert_eq!(updated[0]["actor_id"], ada_id.as_str());

    patch(&app, &bob, &id, None, json!({"status": "done"})).await;
    let moved = payloads(&app, "task.status_changed", &id).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(
        (moved[0]["from"].as_str(), moved[0]["to"].as_str()),
        (Some("todo"), Some("done"))
    );
    assert_eq!(moved[0]["actor_id"], bob_id.as_str());
    let completed = payloads(&app, "task.completed", &id).await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["assignee_id"], bob_id.as_str());

    // A refused change publishes nothing.
    let refused = patch(&app, &bob, &id, None, json!({"status": "in_progress"})).await;
    assert_eq!(refused.status, 409);
    assert_eq!(payloads(&app, "task.updated", &id).await.len(), 2);

    app.send(
        Method::DELETE,
        &format!("/api/v1/tasks/{id}"),
        Some(&ada),
        None,
    )
    .await;
    let deleted = payloads(&app, "task.deleted", &id).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["actor_id"], ada_id.as_str());
}

/// Single creations that arrive together share a transaction (group commit); each still gets
/// its own answer: its own task, or its own error while the others of its group are created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_at_the_same_moment_each_get_their_own_answer() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let bob = app.sign_up("bob@example.com").await;
    let ada_id = user_id(&app, &ada).await;
    let bob_id = user_id(&app, &bob).await;
    let (status, channel) = app
        .post("/api/v1/channels", Some(&ada), json!({"name": "Ada's"}))
        .await;
    assert_eq!(status, 201, "{channel}");
    let foreign = channel["id"].as_str().unwrap().to_string();

    // Every third request is bob's into ada's channel, which he is not a member of: 404.
    let requests: Vec<(usize, &str, &str, Value)> = (0..60)
        .map(|i| {
            if i % 3 == 0 {
                let body = json!({"title": format!("t{i}"), "channel_id": foreign});
                return (i, bob.as_str(), bob_id.as_str(), body);
            }
            let (token, id) = if i % 2 == 0 {
                (&ada, &ada_id)
            } else {
                (&bob, &bob_id)
            };
            let body = json!({"title": format!("t{i}"), "priority": "low"});
            (i, token.as_str(), id.as_str(), body)
        })
        .collect();
    let answers = futures::future::join_all(requests.iter().map(|(i, token, owner, body)| {
        let app = &app;
        async move {
            let (status, task) = app.post("/api/v1/tasks", Some(token), body.clone()).await;
            (*i, *owner, status, task)
        }
    }))
    .await;
    let mut created = 0;
    for (i, owner, status, task) in answers {
        if i % 3 == 0 {
            assert_eq!(
                (status, task["code"].as_str()),
                (404, Some("not_found")),
                "t{i}: {task}"
            );
            continue;
        }
        assert_eq!(status, 201, "t{i}: {task}");
        assert_eq!(
            task["title"],
            format!("t{i}"),
            "its own task, not another's"
        );
        assert_eq!(task["owner_id"], owner, "t{i}");
        created += 1;
    }
    assert_eq!(created, 40);
    let pool = app.db(&app.env.config.task.database).await;
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM tasks ORDER BY title")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut expected: Vec<String> = (0..60)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("t{i}"))
        .collect();
    expected.sort();
    assert_eq!(
        titles, expected,
        "each created once; the refused ones not at all"
    );
    pool.close().await;
    assert_eq!(
        outbox_count(&app, "task.created").await,
        40,
        "one event each"
    );
}

/// task-svc applies `user.*` events in their order (decision 40): one older than what a row
/// says changes nothing (a retried promotion cannot make a member an admin again), and a
/// deleted user stays deleted whatever comes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_events_handled_out_of_order_never_bring_back_an_older_state() {
    use shared::events::{CloudEvent, EventPayload, UserDeleted, UserUpdated};
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let id = uuid::Uuid::parse_str(&user_id(&app, &ada).await).unwrap();
    let db = app.db(&app.env.config.task.database).await;
    let row = || async {
        sqlx::query_as::<_, (String, bool, Option<String>, bool)>(
            "SELECT display_name, active, role, deleted FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&db)
        .await
        .unwrap()
    };
    let member = || ("Ada".to_string(), true, Some("member".to_string()), false);
    eventually("task-svc to hear of Ada", WAIT, || async {
        (row().await == Some(member())).then_some(())
    })
    .await;
    let broker = shared::broker::Broker::new(&app.env.config.amqp, "test-playing-user-svc");
    let publisher = shared::broker::Publisher::new(broker.clone());
    let publish = |event: serde_json::Value, type_: &'static str, event_id: uuid::Uuid| {
        let mut message = shared::broker::OutgoingMessage::new(
            broker.events_exchange(),
            type_,
            serde_json::to_vec(&event).unwrap(),
        );
        message.message_id = Some(event_id.to_string());
        let publisher = publisher.clone();
        async move { publisher.publish(&message).await.unwrap() }
    };
    let handled = |event_id: uuid::Uuid| {
        let db = db.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE event_id = $1")
                    .bind(event_id)
                    .fetch_one(&db)
                    .await
                    .unwrap();
            (n == 1).then_some(())
        }
    };
    let updated = |name: &str, role: &str, active: bool| UserUpdated {
        user_id: id,
        display_name: name.into(),
        role: role.into(),
        active,
        email_verified: None,
        email: None,
        changed: vec!["role".into()],
    };

    // A promotion made an hour ago, handled now: older than Ada's creation, so nothing changes.
    let mut late = CloudEvent::new("user-svc", updated("Ada (admin)", "admin", true));
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, hour_ago.timestamp() as u64, 0);
    late.id = uuid::Uuid::new_v7(ts);
    publish(
        serde_json::to_value(&late).unwrap(),
        UserUpdated::TYPE,
        late.id,
    )
    .await;
    eventually("task-svc to handle the late promotion", WAIT, || {
        handled(late.id)
    })
    .await;
    assert_eq!(
        row().await,
        Some(member()),
        "an older event changed the row"
    );

    // Deleted, then a newer update: the tombstone stays.
    let gone = CloudEvent::new("user-svc", UserDeleted { user_id: id });
    publish(
        serde_json::to_value(&gone).unwrap(),
        UserDeleted::TYPE,
        gone.id,
    )
    .await;
    let after = CloudEvent::new("user-svc", updated("Ada again", "member", true));
    publish(
        serde_json::to_value(&after).unwrap(),
        UserUpdated::TYPE,
        after.id,
    )
    .await;
    for event_id in [gone.id, after.id] {
        eventually(
            "task-svc to handle the deletion and the update",
            WAIT,
            || handled(event_id),
        )
        .await;
    }
    let tombstone = row()
        .await
        .expect("the deleted user's row stays as a tombstone");
    assert_eq!((tombstone.1, tombstone.3), (false, true), "{tombstone:?}");
    broker.close().await;
}

fn titles(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().unwrap().iter();
    items
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtasks_show_progress_and_relations_read_both_ways() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let eve = app.sign_up_as("eve@example.com", "Eve").await;
    let create = |token: &str, body: Value| {
        let (app, token) = (&app, token.to_string());
        async move {
            let (status, task) = app.post("/api/v1/tasks", Some(&token), body).await;
            assert_eq!(status, 201, "{task}");
            task["id"].as_str().unwrap().to_string()
        }
    };
    let parent = create(&ada, json!({"title": "Move house"})).await;
    let pack = create(&ada, json!({"title": "Pack", "parent_id": parent})).await;
    let book = create(&ada, json!({"title": "Book a van", "parent_id": parent})).await;
    let theirs = create(&eve, json!({"title": "Eve's own"})).await;
    // A parent must be a task the creator sees; a task is never its own ancestor.
    let reply = app
        .send(
            Method::POST,
            "/api/v1/tasks",
            Some(&eve),
            Some(json!({"title": "Sneak", "parent_id": parent})),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_parent"));
    for cycle in [&pack, &parent] {
        let reply = patch(&app, &ada, &parent, None, json!({"parent_id": cycle})).await;
        assert_eq!(
            (reply.status, reply.code()),
            (422, "invalid_parent"),
            "{cycle}"
        );
    }
    let children = format!("/api/v1/tasks/{parent}/children");
    let (_, list) = app.get(&children, Some(&ada)).await;
    assert_eq!(titles(&list), ["Pack", "Book a van"]);
    assert_eq!((&list["done"], &list["total"]), (&json!(0), &json!(2)));
    let done = patch(&app, &ada, &pack, None, json!({"status": "done"})).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    let (_, list) = app.get(&children, Some(&ada)).await;
    assert_eq!((&list["done"], &list["total"]), (&json!(1), &json!(2)));
    assert_eq!(app.get(&children, Some(&eve)).await.0, 404);
    // Unparented: the list shrinks.
    let reply = patch(&app, &ada, &book, None, json!({"parent_id": null})).await;
    assert_eq!(reply.body["parent_id"], Value::Null);
    assert_eq!(app.get(&children, Some(&ada)).await.1["total"], 1);

    // Relations: stored once, read by each side in its own words.
    let relations = |id: &str| format!("/api/v1/tasks/{id}/relations");
    let relate = |id: &str, relation: &str, other: &str| {
        let (path, body) = (
            relations(id),
            json!({"relation": relation, "task_id": other}),
        );
        let app = &app;
        let ada = ada.clone();
        async move {
            app.send(Method::POST, &path, Some(&ada), Some(body))
                .await
                .status
        }
    };
    assert_eq!(relate(&parent, "blocks", &book).await, 201);
    assert_eq!(relate(&book, "blocked_by", &parent).await, 200);
    assert_eq!(relate(&pack, "duplicated_by", &book).await, 201);
    assert_eq!(relate(&pack, "relates_to", &parent).await, 201);
    assert_eq!(relate(&parent, "relates_to", &pack).await, 200);
    assert_eq!(relate(&parent, "blocks", &parent).await, 422);
    assert_eq!(relate(&parent, "blocks", &theirs).await, 422);
    let read = |id: String| {
        let (app, ada) = (&app, ada.clone());
        async move {
            let (_, list) = app.get(&relations(&id), Some(&ada)).await;
            let mut pairs: Vec<(String, String)> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let title = r["title"].as_str().unwrap().to_string();
                    (r["relation"].as_str().unwrap().to_string(), title)
                })
                .collect();
            pairs.sort();
            pairs
        }
    };
    let pair = |r: &str, t: &str| (r.to_string(), t.to_string());
    assert_eq!(
        read(book.clone()).await,
        [pair("blocked_by", "Move house"), pair("duplicates", "Pack")]
    );
    assert_eq!(
        read(parent.clone()).await,
        [pair("blocks", "Book a van"), pair("relates_to", "Pack")]
    );
    // Someone who cannot see the task reads nothing and changes nothing.
    assert_eq!(app.get(&relations(&parent), Some(&eve)).await.0, 404);
    let removal = format!("/api/v1/tasks/{book}/relations/blocked_by/{parent}");
    assert_eq!(
        app.send(Method::DELETE, &removal, Some(&eve), None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.send(Method::DELETE, &removal, Some(&ada), None)
            .await
            .status,
        204
    );
    assert_eq!(
        app.send(Method::DELETE, &removal, Some(&ada), None)
            .await
            .status,
        404
    );
    assert_eq!(read(parent.clone()).await, [pair("relates_to", "Pack")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_recurring_task_creates_the_next_one_due_at_the_next_occurrence() {
    use chrono::Datelike;
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let channel = app.shared_channel(&ada, &bob, "Home").await;
    let reply = app
        .send(
            Method::POST,
            "/api/v1/tasks",
            Some(&ada),
            Some(json!({"title": "Bins", "recurrence": "FREQ=SOMETIMES"})),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (422, "invalid_recurrence"));
    // A Monday at 09:00 UTC, some weeks ahead.
    let now = chrono::Utc::now();
    let days = (7 - now.weekday().num_days_from_monday() as i64) % 7 + 14;
    let due = (now + chrono::Duration::days(days))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    let body = json!({"title": "Bins", "due_at": due, "recurrence": "rrule:freq=weekly;byday=mo;count=2",
        "channel_id": channel["id"], "assignee_id": user_id(&app, &bob).await, "tags": ["home"]});
    let (status, first) = app.post("/api/v1/tasks", Some(&ada), body).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["recurrence"], "FREQ=WEEKLY;BYDAY=MO;COUNT=2");
    let id = first["id"].as_str().unwrap();
    // The assignee completes it: the next is created, a week later, with its fields.
    let done = patch(&app, &bob, id, None, json!({"status": "done"})).await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["recurrence"], Value::Null);
    let (_, list) = app.get("/api/v1/tasks?status=todo", Some(&bob)).await;
    let next = list["items"].as_array().unwrap();
    assert_eq!(next.len(), 1, "{list}");
    let next = &next[0];
    assert_eq!(
        (
            &next["title"],
            &next["channel_id"],
            &next["tags"],
            &next["assignee_id"]
        ),
        (
            &first["title"],
            &first["channel_id"],
            &first["tags"],
            &first["assignee_id"]
        )
    );
    let next_due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(next["due_at"].clone()).unwrap();
    assert_eq!(next_due, due + chrono::Duration::days(7));
    assert_eq!(next["recurrence"], "FREQ=WEEKLY;BYDAY=MO;COUNT=1");
    // Reopening and completing the first again makes no second copy.
    for status in ["todo", "done"] {
        assert_eq!(
            patch(&app, &ada, id, None, json!({"status": status}))
                .await
                .status,
            200
        );
    }
    // The last of its count makes none.
    let next_id = next["id"].as_str().unwrap();
    assert_eq!(
        patch(&app, &bob, next_id, None, json!({"status": "done"}))
            .await
            .status,
        200
    );
    assert_eq!(outbox_count(&app, "task.created").await, 2);
    // Moved out of the channel to its owner's own: the channel's member loses it.
    let reply = patch(
        &app,
        &ada,
        next_id,
        None,
        json!({"channel_id": null, "assignee_id": null}),
    )
    .await;
    assert_eq!(reply.body["channel_id"], Value::Null);
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{next_id}"), Some(&bob))
            .await
            .0,
        404
    );
    let elsewhere = app
        .post("/api/v1/channels", Some(&bob), json!({"name": "Bob's"}))
        .await
        .1;
    let reply = patch(
        &app,
        &ada,
        next_id,
        None,
        json!({"channel_id": elsewhere["id"]}),
    )
    .await;
    assert_eq!(reply.status, 404);
}

/// The followers the last `task.status_changed` in the outbox named.
async fn last_followers(app: &App) -> Value {
    let pool = app.db(&app.env.config.task.database).await;
    let followers = sqlx::query_scalar(
        "SELECT payload->'data'->'followers' FROM outbox_messages
          WHERE routing_key = 'task.status_changed' ORDER BY seq DESC, position DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    followers
}

/// Followers: the owner, the assignee and commenters by default; anyone who sees the task
/// follows or unfollows it (an unfollow outlasts a later comment); followers who lose sight of
/// it stop hearing; a follower hears of a move as a notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_hear_of_a_tasks_moves_and_anyone_may_unfollow() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let cy = app.sign_up_as("cy@example.com", "Cy").await;
    let eve = app.sign_up_as("eve@example.com", "Eve").await;
    let channel = app.shared_channel(&ada, &bob, "Ops").await;
    let code = json!({"code": channel["join_code"]});
    assert_eq!(
        app.post("/api/v1/channels/join", Some(&cy), code).await.0,
        200
    );
    let (ada_id, bob_id, cy_id) = (
        user_id(&app, &ada).await,
        user_id(&app, &bob).await,
        user_id(&app, &cy).await,
    );
    let body =
        json!({"title": "Fix the gutter", "channel_id": channel["id"], "assignee_id": bob_id});
    let (_, task) = app.post("/api/v1/tasks", Some(&ada), body).await;
    let id = task["id"].as_str().unwrap();
    let watchers = format!("/api/v1/tasks/{id}/watchers");
    let me = format!("{watchers}/me");
    let sorted = |mut ids: Vec<&String>| {
        ids.sort();
        json!(ids)
    };
    let (_, list) = app.get(&watchers, Some(&ada)).await;
    assert_eq!(
        (&list["following"], &list["items"]),
        (&json!(true), &sorted(vec![&ada_id, &bob_id]))
    );
    assert_eq!(
        app.send(Method::PUT, &me, Some(&eve), None).await.status,
        404
    );
    assert_eq!(app.get(&watchers, Some(&eve)).await.0, 404);
    let reply = app.send(Method::PUT, &me, Some(&cy), None).await;
    assert_eq!(
        (reply.status, &reply.body["following"]),
        (200, &json!(true))
    );
    let reply = app.send(Method::DELETE, &me, Some(&ada), None).await;
    assert_eq!(reply.body["following"], false);
    // The assignee moves it: the followers but the owner are named, and Cy is told.
    assert_eq!(
        patch(&app, &bob, id, None, json!({"status": "in_progress"}))
            .await
            .status,
        200
    );
    assert_eq!(last_followers(&app).await, sorted(vec![&bob_id, &cy_id]));
    eventually("Cy's notification of the move", WAIT, || async {
        let notes = app.notifications(&cy).await;
        notes
            .iter()
            .any(|n| {
                n["kind"] == "task.status_changed"
                    && n["title"].as_str().unwrap_or("").contains("Fix the gutter")
            })
            .then_some(())
    })
    .await;
    // Bob unfollows, then comments: his choice stands. Eve cannot comment; Cy leaves the channel.
    app.send(Method::DELETE, &me, Some(&bob), None).await;
    let comments = format!("/api/v1/tasks/{id}/comments");
    assert_eq!(
        app.post(&comments, Some(&bob), json!({"body": "on it"}))
            .await
            .0,
        201
    );
    let leave = format!("/api/v1/channels/{}/leave", channel["id"].as_str().unwrap());
    assert!(app.post(&leave, Some(&cy), json!({})).await.0 < 300);
    let (_, list) = app.get(&watchers, Some(&bob)).await;
    assert_eq!(
        (&list["following"], &list["items"]),
        (&json!(false), &json!([]))
    );
    // Ada follows again: the move names her only.
    app.send(Method::PUT, &me, Some(&ada), None).await;
    assert_eq!(
        patch(&app, &bob, id, None, json!({"status": "done"}))
            .await
            .status,
        200
    );
    assert_eq!(last_followers(&app).await, json!([ada_id]));
}
