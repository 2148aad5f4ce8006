//! Personal access tokens through the gateway: shown once and kept as a hash, scopes enforced on
//! every documented route, use recorded, expiry honoured, revocation (the owner's, an admin's,
//! a deactivation's) refused at once on every gateway, rate limits per owner.

mod common;

use common::jobs::{job_config, ADMIN};
use common::{App, Reply, SecondGateway, WAIT};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;
use shared::testkit::eventually;

/// Makes a token of `session`'s user; returns the whole answer.
async fn make(app: &App, session: &str, scopes: &[&str], days: Option<u32>) -> Reply {
    let mut body = json!({ "name": "ci deploys", "scopes": scopes });
    if let Some(days) = days {
        body["expires_in_days"] = json!(days);
    }
    app.send(Method::POST, "/api/v1/tokens", Some(session), Some(body))
        .await
}

async fn token(app: &App, session: &str, scopes: &[&str]) -> (String, String) {
    let made = make(app, session, scopes, None).await;
    assert_eq!(made.status, 201, "{}", made.body);
    (made.text("token"), made.text("id"))
}

async fn status_at(api: &str, token: &str, path: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{api}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The caller's tokens, as `GET /api/v1/tokens` lists them.
async fn listed(app: &App, session: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/tokens", Some(session)).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_shown_once_kept_as_a_hash_and_held_to_its_scopes() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;

    let made = make(&app, &ada, &["tasks:read", "tasks:write"], Some(7)).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let pat = made.text("token");
    assert!(pat.starts_with("tmk_") && pat.len() == 47, "{pat}");
    let expires = common::jobs::time(&made.body["expires_at"]);
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "{days} hours");
    // Listed without the token; only its SHA-256 is in the database.
    let items = listed(&app, &ada).await;
    assert_eq!(items.len(), 1);
    assert!(items[0].get("token").is_none(), "{}", items[0]);
    assert!(items[0]["last_used_at"].is_null());
    assert_eq!(items[0]["scopes"], json!(["tasks:read", "tasks:write"]));
    let users = app.db(&app.env.config.user.database).await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM access_tokens")
        .fetch_one(&users)
        .await
        .unwrap();
    assert_eq!(stored, sha2::Sha256::digest(pat.as_bytes()).to_vec());
    let anywhere: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_tokens t WHERE strpos(row_to_json(t)::text, $1) > 0",
    )
    .bind(&pat[4..])
    .fetch_one(&users)
    .await
    .unwrap();
    assert_eq!(anywhere, 0);

    // Within its scopes it acts as its owner; its use is recorded.
    assert_eq!(app.get("/api/v1/users/me", Some(&pat)).await.0, 200);
    let (status, task) = app
        .post("/api/v1/tasks", Some(&pat), json!({ "title": "from CI" }))
        .await;
    assert_eq!(status, 201, "{task}");
    let (status, mine) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert_eq!(status, 200);
    assert!(mine.to_string().contains("from CI"));
    let used = &listed(&app, &ada).await[0]["last_used_at"];
    assert!(common::jobs::time(used) <= chrono::Utc::now(), "{used}");

    // Outside them: 403 naming the scope, and nothing done.
    let job = json!({ "title": "a job", "job": { "kind": "noop", "pool": "inproc" } });
    let refused = app
        .send(Method::POST, "/api/v1/tasks", Some(&pat), Some(job))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "insufficient_scope")
    );
    assert!(refused.text("detail").contains("jobs:write"));
    assert_eq!(
        refused.headers["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="jobs:write""#
    );
    let bulk = json!({ "tasks": [{ "title": "t" }, { "title": "j", "job": { "kind": "noop", "pool": "inproc" } }] });
    let refused = app
        .send(Method::POST, "/api/v1/tasks/bulk", Some(&pat), Some(bulk))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "insufficient_scope")
    );
    let refused = app
        .send(Method::GET, "/api/v1/notifications", Some(&pat), None)
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.text("detail").contains("notifications:read"));
    // A token never makes tokens nor changes its owner's account.
    let again = make(&app, &pat, &["tasks:read"], None).await;
    assert_eq!((again.status, again.code()), (403, "session_required"));
    let password =
        json!({ "current_password": common::PASSWORD, "new_password": "another long passphrase" });
    let refused = app
        .send(
            Method::POST,
            "/api/v1/users/me/password",
            Some(&pat),
            Some(password),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (403, "session_required"));
    let (_, mine) = app.get("/api/v1/tasks", Some(&ada)).await;
    assert!(!mine.to_string().contains("a job"));

    // Bad requests lose nothing and say why.
    let admin_scope = make(&app, &ada, &["admin"], None).await;
    assert_eq!(
        (admin_scope.status, admin_scope.code()),
        (422, "invalid_scopes")
    );
    let unknown = make(&app, &ada, &["tasks:everything"], None).await;
    assert_eq!(unknown.status, 400);
    let forever = make(&app, &ada, &["tasks:read"], Some(400)).await;
    assert_eq!((forever.status, forever.code()), (422, "invalid_expiry"));
    for bad in ["tmk_nope", &format!("tmk_{}", "A".repeat(43))] {
        let answer = app
            .send(Method::GET, "/api/v1/tasks", Some(bad), None)
            .await;
        assert_eq!(answer.status, 401, "{bad}");
    }
    assert_eq!(listed(&app, &ada).await.len(), 1);

    // A job token creates jobs; an admin's token with `admin` reaches the admin routes.
    let (jobs, _) = token(&app, &ada, &["jobs:write", "tasks:write", "tasks:read"]).await;
    let job = app
        .create_job(&jobs, "a job", json!({ "kind": "noop", "pool": "inproc" }))
        .await;
    assert!(job["job"].is_object(), "{job}");
    let refused = app
        .send(Method::GET, "/api/v1/admin/jobs/dead", Some(&jobs), None)
        .await;
    assert!(
        refused.text("detail").contains("`admin`"),
        "{}",
        refused.body
    );
    let admin = app.admin_token().await;
    let (operator, _) = token(&app, &admin, &["admin"]).await;
    assert_eq!(
        app.get("/api/v1/admin/jobs/dead", Some(&operator)).await.0,
        200
    );
    assert_eq!(app.get("/api/v1/tasks", Some(&operator)).await.0, 403);
    // Without `admin`, an admin's token acts as a member: Ada's task is not theirs to see.
    let (plain, _) = token(&app, &admin, &["tasks:read"]).await;
    let adas = format!("/api/v1/tasks/{}", task["id"].as_str().unwrap());
    assert_eq!(app.get(&adas, Some(&admin)).await.0, 200);
    assert_eq!(app.get(&adas, Some(&plain)).await.0, 404);
    // Deleting a job stops it: `tasks:write` alone is not enough; the job stays.
    let job_path = format!("/api/v1/tasks/{}", job["id"].as_str().unwrap());
    let refused = app.send(Method::DELETE, &job_path, Some(&pat), None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "insufficient_scope")
    );
    assert!(refused.text("detail").contains("jobs:write"));
    assert_eq!(app.get(&job_path, Some(&ada)).await.0, 200);
    // A calendar feed's secret address would outlive the token: a session's to make.
    let feed = app
        .send(Method::POST, "/api/v1/calendar/feed", Some(&pat), None)
        .await;
    assert_eq!((feed.status, feed.code()), (403, "session_required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_held_to_a_scope() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let (reader, _) = token(&app, &ada, &["tasks:read"]).await;
    let (status, document) = app.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    // What a `tasks:read` token may reach: reading tasks and what goes with them, and the
    // owner's own profile.
    let readable = [
        "tasks",
        "channels",
        "people",
        "labels",
        "workflows",
        "limits",
        "workers",
        "calendar",
        "media",
        "me",
        "events",
    ];
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            // A stream that opens never ends (tests/stream.rs opens them with tokens too).
            if operation.get("security").is_none() || path == "/api/v1/events/stream" {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|s| match s.starts_with('{') {
                    true => "0191d4f2-0000-7000-8000-000000000000",
                    false => s,
                })
                .collect::<Vec<_>>()
                .join("/");
            let method: Method = method.to_uppercase().parse().unwrap();
            let resource = path
                .trim_start_matches("/api/v1/")
                .split('/')
                .next()
                .unwrap();
            let may = method == Method::GET
                && (readable.contains(&resource)
                    || [
                        "/api/v1/users/me",
                        "/api/v1/users/search",
                        "/api/v1/users/by-email",
                    ]
                    .contains(&path.as_str()))
                && !["/api/v1/tokens", "/api/v1/me/overview"].contains(&path.as_str());
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let answer = app
                .send(method.clone(), &concrete, Some(&reader), body)
                .await;
            let scoped = answer.status == 403
                && ["insufficient_scope", "session_required"].contains(&answer.code());
            assert_eq!(
                scoped, !may,
                "{method} {path}: {} {}",
                answer.status, answer.body
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} operations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_at_once_on_every_gateway() {
    // Ten minutes: a gateway that did not hear of the end would serve the token that long.
    let app = App::start_with(|c| {
        job_config(c);
        c.auth.live_session_cache_ms = 600_000;
    })
    .await;
    let second = SecondGateway::start(&app).await;
    let ada = app.sign_up("ada@example.com").await;
    let (pat, id) = token(&app, &ada, &["tasks:read"]).await;
    for api in [&app.api, &second.api] {
        assert_eq!(status_at(api, &pat, "/api/v1/tasks").await, 200);
    }
    let path = format!("/api/v1/tokens/{id}");
    let revoke = || app.send(Method::DELETE, &path, Some(&ada), None);
    assert_eq!(revoke().await.status, 204);
    assert_eq!(status_at(&app.api, &pat, "/api/v1/tasks").await, 401);
    eventually("the other gateway refuses it", WAIT, || async {
        (status_at(&second.api, &pat, "/api/v1/tasks").await == 401).then_some(())
    })
    .await;
    assert!(listed(&app, &ada).await.is_empty());
    assert_eq!(revoke().await.status, 404);

    // Another user's token is not the caller's to revoke; an admin's it is.
    let bob = app.sign_up("bob@example.com").await;
    let (bobs, bobs_id) = token(&app, &bob, &["tasks:read"]).await;
    let path = format!("/api/v1/tokens/{bobs_id}");
    assert_eq!(
        app.send(Method::DELETE, &path, Some(&ada), None)
            .await
            .status,
        404
    );
    let admin = app.admin_token().await;
    let bob_id = app.user_id(&bob).await;
    let (status, all) = app
        .get(
            &format!("/api/v1/admin/tokens?user_id={bob_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/admin/tokens", Some(&ada)).await.0, 403);
    let path = format!("/api/v1/admin/tokens/{bobs_id}");
    assert_eq!(
        app.send(Method::DELETE, &path, Some(&admin), None)
            .await
            .status,
        204
    );
    assert_eq!(status_at(&second.api, &bobs, "/api/v1/tasks").await, 401);

    // Deactivating a user revokes their tokens.
    let (carls, _) = {
        let carl = app.sign_up("carl@example.com").await;
        let made = token(&app, &carl, &["tasks:read"]).await;
        assert_eq!(status_at(&second.api, &made.0, "/api/v1/tasks").await, 200);
        let carl_id = app.user_id(&carl).await;
        let off = app
            .send(
                Method::PATCH,
                &format!("/api/v1/users/{carl_id}"),
                Some(&admin),
                Some(json!({ "active": false })),
            )
            .await;
        assert_eq!(off.status, 200, "{}", off.body);
        made
    };
    assert_eq!(status_at(&app.api, &carls, "/api/v1/tasks").await, 401);
    eventually(
        "the other gateway refuses the deactivated user's token",
        WAIT,
        || async { (status_at(&second.api, &carls, "/api/v1/tasks").await == 401).then_some(()) },
    )
    .await;
    second.stop.cancel();
    let _ = ADMIN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lives_until_its_expiry_and_counts_against_its_owners_limit() {
    let app = App::start_with(|c| {
        c.rate_limit.api_requests = 6;
        // One window for the whole test.
        c.rate_limit.window_secs = 3600;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let (pat, id) = token(&app, &ada, &["tasks:read"]).await;
    // Its key in the sessions' mirror lives exactly as long as the token.
    let url = secrecy::ExposeSecret::expose_secret(&app.env.config.redis.url).to_string();
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = shared::sessions::key(&app.env.config.redis.key_prefix, id.parse().unwrap());
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!((30 * 86400 - 60..=30 * 86400).contains(&ttl), "{ttl}");
    // Past its expiry (as PostgreSQL, the source of truth, says), it is refused.
    let (expiring, expiring_id) = token(&app, &ada, &["tasks:read"]).await;
    let users = app.db(&app.env.config.user.database).await;
    sqlx::query("UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(expiring_id.parse::<uuid::Uuid>().unwrap())
        .execute(&users)
        .await
        .unwrap();
    let refused = app
        .send(Method::GET, "/api/v1/tasks", Some(&expiring), None)
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    // The owner's session and token share one budget: 6 a window, 2 spent making the tokens.
    let mut answers = vec![];
    for i in 0..8 {
        let who = if i % 2 == 0 { &ada } else { &pat };
        answers.push(
            app.send(Method::GET, "/api/v1/tasks", Some(who), None)
                .await
                .status,
        );
    }
    assert_eq!(answers, [200, 200, 200, 200, 429, 429, 429, 429]);
}
