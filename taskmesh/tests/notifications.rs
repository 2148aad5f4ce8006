//! Notifications end to end: a real SMTP server (aiosmtpd, `tests/notify/smtp_sink.py`), a
//! stand-in SMS provider (the real one is across the internet), preferences, the unsubscribe
//! link, and mail that falls due while the SMTP server is down.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::{extract::State, routing::post, Router};
use common::notify::{mail_dir, Mail, SmtpSink};
use common::{App, WAIT};
use serde_json::{json, Value};
use shared::testkit::eventually;

/// One text the provider received: the `Authorization` header and the form.
type Text = (String, HashMap<String, String>);

/// The stand-in SMS provider: records each form posted to it.
#[derive(Clone, Default)]
struct SmsProvider {
    received: Arc<Mutex<Vec<Text>>>,
}

async fn sms_provider() -> (String, SmsProvider) {
    let provider = SmsProvider::default();
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            post(
                |State(p): State<SmsProvider>,
                 headers: axum::http::HeaderMap,
                 axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    p.received.lock().unwrap().push((auth, form));
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({"sid": "SM1"})),
                    )
                },
            ),
        )
        .with_state(provider.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, provider)
}

/// The code texted to `number` (the newest), as the provider received it.
async fn code_texted(provider: &SmsProvider, number: &str, nth: usize) -> String {
    eventually("the verification code's text", WAIT, || async {
        let texts = provider.received.lock().unwrap().clone();
        let codes: Vec<String> = texts
            .iter()
            .filter(|(_, form)| form["To"] == number)
            .filter_map(|(_, form)| form["Body"].strip_prefix("Your Taskmesh code: "))
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
            .collect();
        codes.get(nth).cloned()
    })
    .await
}

/// Texts go to the stand-in provider at `url`.
fn texts_through(c: &mut shared::Config, url: &str) {
    c.sms.base_url = url.to_string();
    c.sms.account = "AC123".into();
    c.sms.token = Some("sms-token".to_string().into());
    c.sms.from = "+15550000000".into();
}

/// Ada assigns a task to Bob; returns once Bob is told in-app.
async fn assign_seen_in_app(app: &App, ada: &str, title: &str, bob: &str) {
    let bob_id = app.user_id(bob).await;
    assign(app, ada, title, &bob_id).await;
    eventually("Bob's in-app notification", WAIT, || async {
        let notes = app.notifications(bob).await;
        notes
            .iter()
            .any(|n| n["title"].as_str().is_some_and(|t| t.contains(title)))
            .then_some(())
    })
    .await;
}

/// Sends `code` to verify the caller's number.
async fn verify_number(app: &App, token: &str, code: &str) -> common::Reply {
    app.send(
        reqwest::Method::POST,
        "/api/v1/notifications/sms-number/verify",
        Some(token),
        Some(json!({ "code": code })),
    )
    .await
}

async fn assign(app: &App, token: &str, title: &str, assignee: &str) -> String {
    let (status, task) = app
        .post("/api/v1/tasks", Some(token), json!({ "title": title }))
        .await;
    assert_eq!(status, 201, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let reply = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/tasks/{id}"),
            Some(token),
            Some(json!({ "assignee_id": assignee })),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_mails_texts_and_tells_the_assignee_in_app_and_never_the_assigner() {
    let dir = mail_dir("assign");
    // The server wants a login: the credentials come from the URL.
    let sink = SmtpSink::start_with(&dir, 0, &["--auth", "taskmesh:s3cret"]);
    let (sms_url, provider) = sms_provider().await;
    let port = sink.port;
    let app = App::start_with(|c| {
        c.smtp.url = Some(format!("smtp://taskmesh:s3cret@127.0.0.1:{port}").into());
        texts_through(c, &sms_url);
    })
    .await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_verified_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    // Bob opts in to texts about assignments.
    let reply = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&bob),
            Some(json!({"sms_number": "+15551234567",
                        "preferences": [{"kind": "task.assigned", "sms": true}]})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let code = code_texted(&provider, "+15551234567", 0).await;
    let reply = verify_number(&app, &bob, &code).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let task_id = assign(&app, &ada, "Fix the roof", &bob_id).await;
    let subject = "Ada assigned you “Fix the roof”";
    let mail = eventually("Bob's assignment mail", WAIT, || async {
        sink.mails().into_iter().find(|m| m.subject == subject)
    })
    .await;
    assert_eq!(mail.rcpt, "bob@example.com");
    assert_eq!(mail.to, "bob@example.com");
    assert!(mail.text.contains("Hello Bob"), "{}", mail.text);
    assert!(
        mail.text
            .contains("Ada assigned the task “Fix the roof” to you."),
        "{}",
        mail.text
    );
    assert!(
        mail.text.contains(&format!("/api/v1/tasks/{task_id}")),
        "{}",
        mail.text
    );
    assert!(
        mail.html
            .contains("Ada assigned the task “Fix the roof” to you."),
        "{}",
        mail.html
    );
    assert!(
        mail.html.contains(&format!("/api/v1/tasks/{task_id}\"")),
        "{}",
        mail.html
    );
    // The Message-ID is the message's id, derived from the event and the recipient.
    let notify = app.db(&app.env.config.notify.database).await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE channel = 'email' AND kind = 'task.assigned' AND state = 'sent'",
    )
    .fetch_all(&notify)
    .await
    .unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(mail.message_id, format!("{}@127.0.0.1", ids[0]));
    let unsubscribe = mail.unsubscribe.clone().expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with("<http") && unsubscribe.ends_with('>'),
        "{unsubscribe}"
    );
    assert_eq!(
        mail.unsubscribe_post.as_deref(),
        Some("List-Unsubscribe=One-Click")
    );

    // In-app too; Ada, who assigned, hears nothing of it on any channel.
    let notes = app.notifications(&bob).await;
    assert!(
        notes
            .iter()
            .any(|n| n["kind"] == "task.assigned" && n["subject"] == task_id.as_str()),
        "{notes:?}"
    );
    assert!(app
        .notifications(&ada)
        .await
        .iter()
        .all(|n| n["subject"] != task_id.as_str()));
    // The text went to the provider with the account's credentials.
    let (auth, form) = eventually("Bob's text", WAIT, || async {
        let texts = provider.received.lock().unwrap().clone();
        texts
            .into_iter()
            .find(|(_, f)| f["Body"].starts_with(subject))
    })
    .await;
    assert!(auth.starts_with("Basic "), "{auth}");
    assert_eq!(form["To"], "+15551234567");
    assert_eq!(form["From"], "+15550000000");
    assert!(form["Body"].starts_with(subject), "{form:?}");
    let ada_mail: Vec<Mail> = sink
        .mails()
        .into_iter()
        .filter(|m| m.rcpt == "ada@example.com")
        .collect();
    assert!(
        ada_mail
            .iter()
            .all(|m| m.subject == "Confirm your email address for Taskmesh"),
        "{ada_mail:?}"
    );

    // The unsubscribe link works without a login and turns assignment mail off; an altered one
    // is refused.
    let token = unsubscribe
        .trim_matches(|c| c == '<' || c == '>')
        .split_once("token=")
        .unwrap()
        .1
        .to_string();
    let url = |token: &str| format!("{}/api/v1/notifications/unsubscribe?token={token}", app.api);
    // One character of the MAC changed (to another character: a link ending in `A` once made
    // this the same token).
    let at = token.len() - 5;
    let other = if &token[at..at + 1] == "A" { "B" } else { "A" };
    let altered = format!("{}{other}{}", &token[..at], &token[at + 1..]);
    assert_ne!(altered, token);
    let refused = app
        .http
        .post(url(&altered))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let page = app.http.get(url(&token)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, prefs) = app
        .get("/api/v1/notifications/preferences", Some(&bob))
        .await;
    let assigned = |prefs: &Value| {
        prefs["preferences"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["kind"] == "task.assigned")
            .unwrap()
            .clone()
    };
    assert_eq!(assigned(&prefs)["email"], true, "GET changes nothing");
    let done = app
        .http
        .post(url(&token))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let (_, prefs) = app
        .get("/api/v1/notifications/preferences", Some(&bob))
        .await;
    assert_eq!(assigned(&prefs)["email"], false);
    assert_eq!(assigned(&prefs)["in_app"], true);

    // Preferences off: the next assignment is told in-app only; no mail is ever queued.
    let second = assign(&app, &ada, "Paint the fence", &bob_id).await;
    eventually("the second in-app notification", WAIT, || async {
        let notes = app.notifications(&bob).await;
        notes
            .iter()
            .any(|n| n["subject"] == second.as_str())
            .then_some(())
    })
    .await;
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE channel = 'email' AND kind = 'task.assigned'",
    )
    .fetch_one(&notify)
    .await
    .unwrap();
    assert_eq!(queued, 1, "only the first assignment was mailed");
    notify.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_preferences_are_refused_and_change_nothing() {
    let app = App::start().await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let put = |body: Value| {
        app.send(
            reqwest::Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&bob),
            Some(body),
        )
    };
    let (_, before) = app
        .get("/api/v1/notifications/preferences", Some(&bob))
        .await;
    for (body, code) in [
        (
            json!({"preferences": [{"kind": "task.nope", "email": false}]}),
            "unknown_kind",
        ),
        (json!({"sms_number": "0555 1234"}), "invalid_phone"),
        (json!({"sms_number": "+19005550100"}), "refused_phone"),
        (json!({"sms_number": "+449098790000"}), "refused_phone"),
        (
            json!({"preferences": [{"kind": "email.verification", "email": false}]}),
            "unknown_kind",
        ),
        (
            json!({"preferences": [{"kind": "task.assigned", "sms": true}]}),
            "sms_number_required",
        ),
        (
            json!({"preferences": [{"kind": "task.assigned", "email": false}, {"kind": "bogus", "email": false}]}),
            "unknown_kind",
        ),
    ] {
        let reply = put(body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["code"], code, "{body}");
    }
    let (_, after) = app
        .get("/api/v1/notifications/preferences", Some(&bob))
        .await;
    assert_eq!(before, after);
    let kinds: Vec<&str> = after["preferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"task.assigned") && kinds.contains(&"task.due_soon"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_falls_due_while_smtp_is_down_arrives_once_each_when_it_returns() {
    const N: usize = 200;
    let dir = mail_dir("outage");
    let mut sink = SmtpSink::start(&dir, 0);
    let port = sink.port;
    // The consumers' retry budget stays the tests' short one (4 attempts, 0.7 s in all): the
    // outage outlasts it.
    let app = App::start_with(|c| {
        c.smtp.url = Some(format!("smtp://127.0.0.1:{port}").into());
        c.notifications.email_hourly_cap = 10_000;
    })
    .await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_verified_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    eventually("both verification mails", WAIT, || async {
        (sink.mails().len() == 2).then_some(())
    })
    .await;

    sink.stop();
    let down_since = std::time::Instant::now();
    let tasks: Vec<Value> = (0..N)
        .map(|i| json!({"title": format!("outage {i}"), "assignee_id": bob_id}))
        .collect();
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");
    // Every mail is queued, and the outage lasts three times the retry budget (which used to
    // dead-letter every mail) while the mail consumer holds them against the dead server.
    let notify = app.db(&app.env.config.notify.database).await;
    eventually("every mail queued", WAIT, || async {
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE kind = 'task.assigned' AND state = 'queued'",
        )
        .fetch_one(&notify)
        .await
        .unwrap();
        (queued == N as i64).then_some(())
    })
    .await;
    let notify_url = app.stack.as_ref().unwrap().config.notify.url.clone();
    let queue = format!("{}.notify-svc.mail", app.env.config.amqp.namespace);
    eventually(
        "an outage past the retry budget, mail held",
        WAIT,
        || async {
            let held = app
                .metric(&notify_url, "taskmesh_consumer_unavailable_total", &queue)
                .await?;
            let budget = std::time::Duration::from_millis(100 + 200 + 400);
            (held >= 1.0 && down_since.elapsed() > 3 * budget).then_some(())
        },
    )
    .await;

    let sink = SmtpSink::start(&dir, port);
    let mails = eventually("every mail after the server returns", WAIT * 2, || async {
        let mails: Vec<Mail> = sink
            .mails()
            .into_iter()
            .filter(|m| m.subject.starts_with("Ada assigned you “outage"))
            .collect();
        (mails.len() >= N).then_some(mails)
    })
    .await;
    let mut ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "one Message-ID each");
    assert_eq!(mails.len(), N, "no mail twice");
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE kind = 'task.assigned' AND state = 'sent'",
    )
    .fetch_one(&notify)
    .await
    .unwrap();
    assert_eq!(sent, N as i64);
    notify.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_hourly_cap_mail_is_held_for_one_digest_written_as_eml_files_without_smtp() {
    // No SMTP server: mail goes to .eml files, as `taskmesh up` does by default.
    let app = App::start_with(|c| {
        c.notifications.email_hourly_cap = 3;
        c.notifications.digest_interval_secs = 1;
    })
    .await;
    let dir = std::path::PathBuf::from(&app.env.config.smtp.mail_dir);
    let files = || -> Vec<Mail> {
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .map(|p| Mail::parse(&std::fs::read(p).unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_verified_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    let tasks: Vec<Value> = (0..6)
        .map(|i| json!({"title": format!("capped {i}"), "assignee_id": bob_id}))
        .collect();
    let (status, body) = app
        .post("/api/v1/tasks/bulk", Some(&ada), json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, 201, "{body}");

    // Bob's verification mail and two assignments fill his hour; the other four are held.
    let notify = app.db(&app.env.config.notify.database).await;
    let count = |state: &'static str| {
        let notify = notify.clone();
        let bob_id = bob_id.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM messages WHERE user_id = $1::uuid AND state = $2",
            )
            .bind(bob_id)
            .bind(state)
            .fetch_one(&notify)
            .await
            .unwrap()
        }
    };
    eventually("three sent and four held", WAIT, || async {
        (count("sent").await == 3 && count("held").await == 4).then_some(())
    })
    .await;
    let bobs = |mails: Vec<Mail>| -> Vec<Mail> {
        mails
            .into_iter()
            .filter(|m| m.to == "bob@example.com")
            .collect()
    };
    assert_eq!(bobs(files()).len(), 3, "the cap holds");
    assert!(files().iter().any(|m| m.to == "ada@example.com"));

    // An hour later (moved in the database), the held four leave as one digest.
    sqlx::query(
        "UPDATE messages SET sent_at = sent_at - interval '2 hours' WHERE user_id = $1::uuid",
    )
    .bind(&bob_id)
    .execute(&notify)
    .await
    .unwrap();
    let digest = eventually("the digest", WAIT, || async {
        bobs(files())
            .into_iter()
            .find(|m| m.subject == "4 Taskmesh notifications")
    })
    .await;
    let titles = (0..6)
        .filter(|i| {
            digest
                .text
                .contains(&format!("Ada assigned you “capped {i}”"))
        })
        .count();
    assert_eq!(
        titles,
        4,
        "the digest as parsed: {digest:?}\nthe folder: {:?}",
        std::fs::read_dir(&dir).map(|d| d
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect::<Vec<_>>())
    );
    assert!(digest.html.contains("capped"), "{}", digest.html);
    // The file is written before its rows are marked (sent, then recorded): wait for the mark.
    eventually("the held four marked digested", WAIT, || async {
        (count("digested").await == 4).then_some(())
    })
    .await;
    assert_eq!(count("held").await, 0);
    assert_eq!(bobs(files()).len(), 4);
    notify.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_whose_sender_died_mid_send_is_sent_once_its_claim_lapses() {
    // No SMTP server: mail goes to .eml files.
    let app = App::start().await;
    let dir = std::path::PathBuf::from(&app.env.config.smtp.mail_dir);
    let eml = || -> usize {
        std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).count())
            .unwrap_or(0)
    };
    let _ada = app.sign_up_as("ada@example.com", "Ada").await;
    eventually("the verification mail", WAIT, || async {
        (eml() == 1).then_some(())
    })
    .await;
    let notify = app.db(&app.env.config.notify.database).await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM messages WHERE channel = 'email'")
        .fetch_one(&notify)
        .await
        .unwrap();
    // As a sender that claimed it and died before the server answered: `sending` under a claim
    // that lapses in 3 s, nothing at the server, and its command delivered again.
    std::fs::remove_dir_all(&dir).unwrap();
    sqlx::query(
        "UPDATE messages SET state = 'sending', sent_at = NULL,
                locked_until = now() + interval '3 seconds' WHERE id = $1",
    )
    .bind(id)
    .execute(&notify)
    .await
    .unwrap();
    let mut tx = notify.begin().await.unwrap();
    let command =
        shared::events::CloudEvent::new("notify-svc", shared::events::MailDue { message_id: id });
    shared::outbox::enqueue(&mut tx, command).await.unwrap();
    tx.commit().await.unwrap();

    eventually("the mail sent after the claim lapsed", WAIT, || async {
        let state: String = sqlx::query_scalar("SELECT state FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(&notify)
            .await
            .unwrap();
        (state == "sent" && eml() == 1).then_some(())
    })
    .await;
    notify.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_in_one_batch_count_the_cap_in_order_and_claim_a_message_once() {
    use notify_svc::store::messages::{claim_many, Claim, ClaimRequest};
    // No digest during the test: it would take the held mail.
    let app = App::start_with(|c| c.notifications.digest_interval_secs = 3600).await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let ada_id: uuid::Uuid = app.user_id(&ada).await.parse().unwrap();
    let bob_id: uuid::Uuid = app.user_id(&bob).await.parse().unwrap();
    let notify = app.db(&app.env.config.notify.database).await;
    // Their verification mails settled first: a claim still in flight would undo the move below.
    eventually(
        "both people known, their verification mails sent",
        WAIT,
        || async {
            let known: (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM users WHERE id = ANY($1)),
                    (SELECT count(*) FROM messages WHERE user_id = ANY($1) AND state = 'sent')",
            )
            .bind(vec![ada_id, bob_id])
            .fetch_one(&notify)
            .await
            .unwrap();
            (known == (2, 2)).then_some(())
        },
    )
    .await;
    // Their verification mails count for an hour: moved out of it, so the cap counts only this
    // test's.
    sqlx::query("UPDATE messages SET sent_at = now() - interval '2 hours'")
        .execute(&notify)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET active = false WHERE id = $1")
        .bind(ada_id)
        .execute(&notify)
        .await
        .unwrap();
    let queued = |user: uuid::Uuid| {
        let notify = notify.clone();
        async move {
            let id = uuid::Uuid::now_v7();
            sqlx::query(
                "INSERT INTO messages (id, channel, user_id, kind, event_id, content)
                 VALUES ($1, 'email', $2, 'task.assigned', $1, '{\"to_name\": \"x\", \"to\": \"x@example.com\", \"title\": \"t\", \"body\": \"b\", \"link\": null}')",
            )
            .bind(id)
            .bind(user)
            .execute(&notify)
            .await
            .unwrap();
            id
        }
    };
    let (b1, b2, b3, a1) = (
        queued(bob_id).await,
        queued(bob_id).await,
        queued(bob_id).await,
        queued(ada_id).await,
    );
    let lease = std::time::Duration::from_secs(60);
    let request = |id| ClaimRequest { id, cap: 2, lease };
    let answers = claim_many(
        &notify,
        &[
            request(b1),
            request(b1),
            request(b2),
            request(a1),
            request(b3),
            request(uuid::Uuid::now_v7()),
        ],
    )
    .await
    .unwrap();
    let claims: Vec<Claim> = answers.iter().map(|(claim, _)| *claim).collect();
    assert_eq!(
        claims,
        [
            Claim::Claimed,
            Claim::Busy,
            Claim::Claimed,
            Claim::Skipped,
            Claim::Held,
            Claim::Settled
        ],
        "b1 once, b2 within the cap of 2, Ada inactive, b3 over the cap, an unknown id"
    );
    let states: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, state FROM messages WHERE id = ANY($1) ORDER BY id")
            .bind(vec![b1, b2, b3, a1])
            .fetch_all(&notify)
            .await
            .unwrap();
    let state = |id| states.iter().find(|(i, _)| *i == id).unwrap().1.clone();
    assert_eq!(
        [state(b1), state(b2), state(b3), state(a1)],
        ["sending", "sending", "held", "skipped"]
    );
    // A second batch sees the first's claims: still sending, so busy; nothing more is claimed.
    let again = claim_many(&notify, &[request(b1), request(b3)])
        .await
        .unwrap();
    assert_eq!(again[0].0, Claim::Busy);
    assert_eq!(again[1].0, Claim::Settled, "held waits for the digest");
    notify.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_events_is_applied_in_order_and_each_event_once() {
    use shared::events::{CloudEvent, TaskAssigned, UserCreated, UserUpdated};
    let app = App::start().await;
    let config = app.env.config.clone();
    let pool = app.db(&config.notify.database).await;
    let at_rest = shared::startup::at_rest(&config).unwrap();
    let state = notify_svc::AppState {
        pool: pool.clone(),
        links: std::sync::Arc::new(
            notify_svc::service::links::Signer::load(&pool, &at_rest, &config.notifications)
                .await
                .unwrap(),
        ),
        claims: notify_svc::service::claims::Claims::start(pool.clone()),
        config: std::sync::Arc::new(config),
        at_rest: std::sync::Arc::new(at_rest),
    };
    let (ada, bob, cy) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let created = |id, name: &str| {
        CloudEvent::new(
            "user-svc",
            UserCreated {
                user_id: id,
                email: format!("{name}@example.com"),
                display_name: name.into(),
                role: "member".into(),
            },
        )
        .into_untyped()
        .unwrap()
    };
    let assigned = |to, title: &str| {
        CloudEvent::new(
            "task-svc",
            TaskAssigned {
                task_id: uuid::Uuid::now_v7(),
                owner_id: ada,
                actor_id: ada,
                assignee_id: Some(to),
                previous_assignee_id: None,
                title: title.into(),
                pool: None,
            },
        )
        .into_untyped()
        .unwrap()
    };
    let updated = |id, name: &str, active, changed: &str| {
        CloudEvent::new(
            "user-svc",
            UserUpdated {
                user_id: id,
                display_name: name.into(),
                role: "member".into(),
                active,
                email_verified: Some(true),
                email: None,
                changed: vec![changed.into()],
            },
        )
        .into_untyped()
        .unwrap()
    };
    let cy_leaves = updated(cy, "Cy", false, "active");
    let to_bob = assigned(bob, "for Bob");
    let to_cy_before = assigned(cy, "for Cy, before");
    let to_cy_after = assigned(cy, "for Cy, after");
    // Bob is created (and verified) in the same run as his assignment (named twice); Cy is
    // deactivated between her two assignments.
    let run = [
        created(ada, "ada"),
        created(bob, "bob"),
        created(cy, "cy"),
        updated(bob, "bob", true, "email_verified"),
        updated(cy, "cy", true, "email_verified"),
        to_bob.clone(),
        to_bob.clone(),
        to_cy_before.clone(),
        cy_leaves,
        to_cy_after.clone(),
    ];
    let refs: Vec<&CloudEvent> = run.iter().collect();
    let mut tx = pool.begin().await.unwrap();
    notify_svc::service::fanout::apply(&state, &mut tx, &refs)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let titles: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT user_id, content->>'title' FROM messages
          WHERE kind = 'task.assigned' ORDER BY content->>'title'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        titles,
        [
            (bob, "ada assigned you “for Bob”".to_string()),
            (cy, "ada assigned you “for Cy, before”".to_string())
        ],
        "Bob's mail once; Cy's second assignment came after she left"
    );
    let in_app: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE kind = 'task.assigned'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(in_app, 2);
    // Applied again (a redelivered batch): nothing new.
    let mut tx = pool.begin().await.unwrap();
    notify_svc::service::fanout::apply(&state, &mut tx, &refs)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE user_id = ANY($1)")
        .bind(vec![ada, bob, cy])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        all, 2,
        "two assignments, once each; no welcome mail (addresses not verified when welcomed)"
    );
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_only_to_verified_addresses_and_in_app_always() {
    let dir = mail_dir("verify");
    let sink = SmtpSink::start(&dir, 0);
    let port = sink.port;
    let app =
        App::start_with(|c| c.smtp.url = Some(format!("smtp://127.0.0.1:{port}").into())).await;
    let ada = app.sign_up_verified_as("ada@example.com", "Ada").await;
    // Someone signs up with a stranger's address, and a name written to pass for the platform.
    let lure = "Your bank account is locked, call +1 900 555 0100";
    let bob = app.sign_up_as("bob@example.com", lure).await;
    let bob_id = app.user_id(&bob).await;
    let me = app.get("/api/v1/users/me", Some(&bob)).await.1;
    assert_eq!(me["email_verified"], false, "{me}");
    // A new link asked for at once, and a made-up token, are refused; nothing changes.
    let app = &app;
    let spend = |token: String| async move {
        let (status, body) = app
            .post("/api/v1/auth/verify-email", None, json!({ "token": token }))
            .await;
        (status, body["code"].as_str().map(str::to_string))
    };
    let ask_again = || {
        app.send(
            reqwest::Method::POST,
            "/api/v1/users/me/verify-email",
            Some(&bob),
            None,
        )
    };
    let again = ask_again().await;
    assert_eq!(again.status, 429, "{:?}", again.body);
    assert!(again.headers.contains_key("retry-after"));
    let invalid = (422, Some("invalid_token".to_string()));
    assert_eq!(spend("not-a-token".into()).await, invalid);

    // The address gets one mail: the link, with nothing the registrant wrote in it.
    let link = eventually("the verification mail", WAIT, || async {
        sink.mails()
            .into_iter()
            .find(|m| m.rcpt == "bob@example.com")
    })
    .await;
    assert_eq!(link.subject, "Confirm your email address for Taskmesh");
    assert!(!link.raw.contains("locked"), "{}", link.raw);
    assert!(link.unsubscribe.is_none(), "{}", link.raw);
    let url = app.verification_link("bob@example.com").await;
    assert!(url.contains("/verify-email?token="), "{url}");
    assert!(
        link.text.contains(&url) && link.html.contains(&url),
        "{}",
        link.raw
    );

    // Unverified, Bob is told in-app and mailed nothing.
    assign_seen_in_app(app, &ada, "Before verifying", &bob).await;
    let notify = app.db(&app.env.config.notify.database).await;
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE user_id = $1::uuid AND kind <> 'email.verification'",
    )
    .bind(&bob_id)
    .fetch_one(&notify)
    .await
    .unwrap();
    assert_eq!(queued, 0, "mail queued for an unverified address");

    // Verified (the link works once), Bob is mailed from then on.
    app.verify_email("bob@example.com").await;
    let token = url.split_once("token=").unwrap().1;
    assert_eq!(spend(token.to_string()).await, invalid);
    let verified = ask_again().await;
    assert_eq!(verified.status, 409, "{:?}", verified.body);
    assign(app, &ada, "After verifying", &bob_id).await;
    eventually("Bob's assignment mail", WAIT, || async {
        let mails = sink.mails();
        mails
            .iter()
            .any(|m| m.subject.contains("After verifying"))
            .then_some(())
    })
    .await;
    assert!(
        !sink
            .mails()
            .iter()
            .any(|m| m.subject.contains("Before verifying")),
        "the assignment made before verifying was mailed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_gets_texts_only_once_verified_by_the_code_texted_to_it() {
    let (sms_url, provider) = sms_provider().await;
    let app = App::start_with(|c| texts_through(c, &sms_url)).await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    let number = "+15551234567";
    let set_number = |number: &str| {
        app.send(
            reqwest::Method::PUT,
            "/api/v1/notifications/preferences",
            Some(&bob),
            Some(json!({"sms_number": number,
                        "preferences": [{"kind": "task.assigned", "sms": true}]})),
        )
    };
    let reply = set_number(number).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["sms_number_verified"], false);
    // Within a minute, no new code: neither asked for nor by another number (nothing changes).
    let again = app
        .send(
            reqwest::Method::POST,
            "/api/v1/notifications/sms-number/code",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(again.status, 429, "{:?}", again.body);
    let other = "+15557654321";
    let reply = set_number(other).await;
    assert_eq!(
        (reply.status, reply.text("code").as_str()),
        (429, "too_soon")
    );
    let code = code_texted(&provider, number, 0).await;

    // Unverified, the number gets no text about the assignment (Bob is told in-app).
    assign_seen_in_app(&app, &ada, "Before the code", &bob).await;
    let notify = app.db(&app.env.config.notify.database).await;
    let texts = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messages WHERE channel = 'sms' AND kind = 'task.assigned'",
        )
        .fetch_one(&notify)
        .await
        .unwrap()
    };
    assert_eq!(texts().await, 0, "a text queued for an unverified number");

    // A wrong code is refused; the right one verifies.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let reply = verify_number(&app, &bob, wrong).await;
    assert_eq!(
        (reply.status, reply.text("code").as_str()),
        (422, "wrong_code")
    );
    let reply = verify_number(&app, &bob, &code).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["sms_number_verified"], true);
    assign(&app, &ada, "After the code", &bob_id).await;
    eventually("Bob's text about the assignment", WAIT, || async {
        let received = provider.received.lock().unwrap().clone();
        received
            .iter()
            .any(|(_, f)| f["Body"].contains("After the code"))
            .then_some(())
    })
    .await;
    assert!(!provider
        .received
        .lock()
        .unwrap()
        .iter()
        .any(|(_, f)| f["Body"].contains("Before the code")));

    // A minute later (moved in the database), another number starts unverified; five wrong
    // tries spend its code.
    sqlx::query("UPDATE contacts SET code_sent_at = code_sent_at - interval '2 minutes'")
        .execute(&notify)
        .await
        .unwrap();
    let reply = set_number(other).await;
    assert_eq!(reply.body["sms_number_verified"], false, "{:?}", reply.body);
    let code = code_texted(&provider, other, 0).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let reply = verify_number(&app, &bob, wrong).await;
        assert_eq!(reply.text("code"), "wrong_code");
    }
    let reply = verify_number(&app, &bob, &code).await;
    assert_eq!(
        (reply.status, reply.text("code").as_str()),
        (422, "code_spent")
    );
    notify.close().await;
}
