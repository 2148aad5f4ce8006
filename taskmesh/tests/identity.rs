//! Identity and the gateway's front door, with every service running.

mod common;

use common::{App, PASSWORD, WAIT};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use shared::testkit::eventually;

const ADMIN: &str = "admin@example.com";

async fn admin_app() -> App {
    App::start_with(|c| c.auth.bootstrap_admin_email = Some(ADMIN.into())).await
}

/// The private key user-svc signs with, read from its database and opened, to forge tokens that differ
/// from real ones in exactly one respect.
async fn signing_key(app: &App) -> (String, EncodingKey) {
    let pool = app.db(&app.env.config.user.database).await;
    let (kid, pem): (String, String) = sqlx::query_as(
        "SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    // Kept sealed: opened with the deployment's sealing key, as user-svc does.
    let at_rest = shared::startup::at_rest(&app.env.config).unwrap();
    let pem = at_rest.open_text(&pem).unwrap();
    (kid, EncodingKey::from_ed_pem(pem.as_bytes()).unwrap())
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_refuses_bad_tokens_with_401() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let (kid, key) = signing_key(&app).await;
    let claims = claims_of(&token);
    let sign = |claims: &Value, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    let with = |field: &str, value: Value| {
        let mut c = claims.clone();
        c[field] = value;
        c
    };
    // A control: the real signing key with the real claims is accepted.
    let control = sign(&claims, Some(&kid), &key);
    assert_eq!(app.get("/api/v1/users/me", Some(&control)).await.0, 200);

    let other_key = {
        let fresh = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let pem = fresh.to_pkcs8_pem(Default::default()).unwrap();
        EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let alg_none = {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            b64(&claims)
        )
    };
    let mut bad_signature: Vec<String> = token.split('.').map(str::to_string).collect();
    bad_signature[2] = "A".repeat(bad_signature[2].len());
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("alg none", Some(alg_none)),
        ("bad signature", Some(bad_signature.join("."))),
        ("another key", Some(sign(&claims, Some(&kid), &other_key))),
        (
            "expired",
            Some(sign(&with("exp", json!(now - 120)), Some(&kid), &key)),
        ),
        (
            "wrong iss",
            Some(sign(&with("iss", json!("evil")), Some(&kid), &key)),
        ),
        (
            "wrong aud",
            Some(sign(&with("aud", json!("other-api")), Some(&kid), &key)),
        ),
        (
            "unknown kid",
            Some(sign(&claims, Some("no-such-kid"), &key)),
        ),
        ("no kid", Some(sign(&claims, None, &key))),
        (
            "unknown session",
            Some(sign(
                &with("sid", json!(uuid::Uuid::now_v7().to_string())),
                Some(&kid),
                &key,
            )),
        ),
    ];
    for route in [
        "/api/v1/users/me",
        "/api/v1/tasks",
        "/api/v1/notifications",
        "/api/v1/media",
    ] {
        for (case, token) in &cases {
            let reply = app.send(Method::GET, route, token.as_deref(), None).await;
            assert_eq!(reply.status, 401, "{case} on {route}: {:?}", reply.body);
            assert_eq!(
                reply.headers["content-type"], "application/problem+json",
                "{case} on {route}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_at_once_and_other_sessions_stay() {
    let app = App::start().await;
    app.sign_up("ada@example.com").await;
    let first = app.login("ada@example.com", PASSWORD).await;
    let second = app.login("ada@example.com", PASSWORD).await;
    let (a, b) = (first.text("access_token"), second.text("access_token"));

    let out = app
        .send(Method::POST, "/api/v1/auth/logout", Some(&a), None)
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(
        app.get("/api/v1/users/me", Some(&a)).await.0,
        401,
        "logged-out token"
    );
    assert_eq!(
        app.get("/api/v1/users/me", Some(&b)).await.0,
        200,
        "other session"
    );
    let refresh = app
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": first.text("refresh_token") })),
        )
        .await;
    assert_eq!(
        refresh.status, 401,
        "a logged-out session cannot be refreshed"
    );

    let out = app
        .send(Method::POST, "/api/v1/auth/logout-all", Some(&b), None)
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(app.get("/api/v1/users/me", Some(&b)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reusing_a_spent_token_ends_the_family() {
    let app = App::start().await;
    app.sign_up("ada@example.com").await;
    let login = app.login("ada@example.com", PASSWORD).await;
    let first = login.text("refresh_token");
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(json!({ "refresh_token": token })),
            )
            .await
        }
    };
    let rotated = refresh(first.clone()).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let second = rotated.text("refresh_token");
    assert_ne!(second, first, "each refresh returns a new token");
    let access = rotated.text("access_token");
    assert_eq!(app.get("/api/v1/users/me", Some(&access)).await.0, 200);
    assert_eq!(
        claims_of(&access)["sid"],
        claims_of(&login.text("access_token"))["sid"],
        "same session"
    );

    // The spent first token comes back: the whole family ends.
    let reused = refresh(first).await;
    assert_eq!(
        (reused.status, reused.code()),
        (401, "refresh_token_reused")
    );
    assert_eq!(
        refresh(second).await.status,
        401,
        "the newest token died too"
    );
    assert_eq!(app.get("/api/v1/users/me", Some(&access)).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_other_session() {
    let app = App::start().await;
    app.sign_up("ada@example.com").await;
    let here = app
        .login("ada@example.com", PASSWORD)
        .await
        .text("access_token");
    let there = app
        .login("ada@example.com", PASSWORD)
        .await
        .text("access_token");
    let change = app
        .send(
            Method::POST,
            "/api/v1/users/me/password",
            Some(&here),
            Some(json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" })),
        )
        .await;
    assert_eq!(change.status, 204, "{:?}", change.body);
    assert_eq!(app.get("/api/v1/users/me", Some(&here)).await.0, 200);
    assert_eq!(app.get("/api/v1/users/me", Some(&there)).await.0, 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        app.login("ada@example.com", "a brand new passphrase")
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_use_admin_routes_or_raise_their_own_role() {
    let app = admin_app().await;
    let admin = app.sign_up_verified(ADMIN).await;
    let member = app.sign_up("ada@example.com").await;
    let me = app.get("/api/v1/users/me", Some(&member)).await.1;
    let my_id = me["id"].as_str().unwrap().to_string();
    assert_eq!(me["role"], "member");

    for (method, path, body) in [
        (Method::GET, "/api/v1/users".to_string(), None),
        (Method::GET, format!("/api/v1/users/{my_id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{my_id}"),
            Some(json!({"role": "admin"})),
        ),
        (Method::DELETE, format!("/api/v1/users/{my_id}"), None),
    ] {
        let reply = app.send(method.clone(), &path, Some(&member), body).await;
        assert_eq!(reply.status, 403, "{method} {path}: {:?}", reply.body);
    }
    for body in [
        json!({"role": "admin"}),
        json!({"display_name": "Ada", "role": "admin"}),
        json!({"email_verified": true}),
        json!({"active": true}),
    ] {
        let reply = app
            .send(
                Method::PATCH,
                "/api/v1/users/me",
                Some(&member),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.body);
    }
    // Registering cannot choose a role either.
    let reply = app
        .send(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "eve@example.com", "password": PASSWORD, "display_name": "Eve", "role": "admin"})),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        app.get("/api/v1/users/me", Some(&member)).await.1["role"],
        "member"
    );

    // The admin can.
    let users = app.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(users.0, 200);
    assert_eq!(users.1["items"].as_array().unwrap().len(), 2);
    let promoted = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{my_id}"),
            Some(&admin),
            Some(json!({"role": "worker"})),
        )
        .await;
    assert_eq!(
        (promoted.status, promoted.text("role").as_str()),
        (200, "worker")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_needs_a_verified_address_and_is_promoted_once() {
    let mut app = admin_app().await;
    // Whoever registers the address first is a member, across restarts too; the mailbox's owner
    // opening the link does not make it admin without the account's password (the link is kept).
    let first = app.sign_up(ADMIN).await;
    let me = app.get("/api/v1/users/me", Some(&first)).await.1;
    assert_eq!(
        (me["role"].as_str(), me["email_verified"].as_bool()),
        (Some("member"), Some(false)),
        "{me}"
    );
    let link = app.verification_link(ADMIN).await;
    let token = link.split_once("token=").unwrap().1;
    for (password, status, code) in [
        (None, 422, "password_required"),
        (Some("not the account's password"), 403, "wrong_password"),
    ] {
        let body = json!({ "token": token, "password": password });
        let (got, problem) = app.post("/api/v1/auth/verify-email", None, body).await;
        assert_eq!(
            (got, problem["code"].as_str()),
            (status, Some(code)),
            "{problem}"
        );
    }
    app.restart().await;
    let first = app.log_in(ADMIN).await;
    assert_eq!(app.get("/api/v1/users", Some(&first)).await.0, 403);
    let me = app.get("/api/v1/users/me", Some(&first)).await.1;
    assert_eq!(me["email_verified"], false, "{me}");

    // With the link and the password, the account is admin (a new token carries the role).
    app.verify_email(ADMIN).await;
    let admin = app.log_in(ADMIN).await;
    assert_eq!(app.get("/api/v1/users", Some(&admin)).await.0, 200);

    // Another admin demotes it: a restart does not promote it again.
    let ada = app.sign_up("ada@example.com").await;
    let ada_id = app.user_id(&ada).await;
    let admin_id = app.user_id(&admin).await;
    let role = |role: &str| Some(json!({ "role": role }));
    let path = format!("/api/v1/users/{ada_id}");
    let reply = app
        .send(Method::PATCH, &path, Some(&admin), role("admin"))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let ada = app.log_in("ada@example.com").await;
    let path = format!("/api/v1/users/{admin_id}");
    let reply = app
        .send(Method::PATCH, &path, Some(&ada), role("member"))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    app.restart().await;
    let demoted = app.log_in(ADMIN).await;
    let me = app.get("/api/v1/users/me", Some(&demoted)).await.1;
    assert_eq!(me["role"], "member", "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_user_is_signed_out_at_once_and_cannot_log_in() {
    let app = admin_app().await;
    let admin = app.sign_up_verified(ADMIN).await;
    let member = app.sign_up("ada@example.com").await;
    let id = app.get("/api/v1/users/me", Some(&member)).await.1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(app.get("/api/v1/tasks", Some(&member)).await.0, 401);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_allows_exactly_the_configured_count_then_429() {
    let app = App::start_with(|c| c.rate_limit.api_requests = 10).await;
    let token = app.sign_up("ada@example.com").await;
    let replies = futures::future::join_all(
        (0..25).map(|_| app.send(Method::GET, "/api/v1/tasks", Some(&token), None)),
    )
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok, limited.len()), (10, 15));
    let retry_after: u64 = limited[0].headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(limited[0].code(), "rate_limited");
    let policy = replies[0].headers["ratelimit-policy"].to_str().unwrap();
    assert_eq!(policy, "\"api\";q=10;w=60");
    assert!(replies[0].headers.contains_key("ratelimit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_locks_out_after_the_configured_failures_whatever_the_email_exists() {
    let app = App::start_with(|c| c.auth.max_failed_logins_per_source = 3).await;
    app.sign_up("ada@example.com").await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let replies =
            futures::future::join_all((0..8).map(|_| app.login(email, "wrong password here")))
                .await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            3,
            "{email}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 429).count(),
            5,
            "{email}: {statuses:?}"
        );
        let locked = replies.iter().find(|r| r.status == 429).unwrap();
        assert!(locked.headers.contains_key("retry-after"));
    }
    // The same answer for an unknown email and a wrong password.
    let unknown = app.login("ghost@example.com", "wrong password here").await;
    let wrong = app.login("ada2@example.com", "wrong password here").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (wrong.status, wrong.code())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_user_svc_down_login_is_503_and_tasks_still_work_then_login_recovers() {
    let mut app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    app.stack
        .as_mut()
        .unwrap()
        .stop_service("user-svc")
        .await
        .unwrap();

    let login = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(login.status, 503, "{:?}", login.body);
    assert!(login.body["detail"].as_str().unwrap().contains("user-svc"));
    assert_eq!(app.get("/api/v1/tasks", Some(&token)).await.0, 200);

    app.stack
        .as_mut()
        .unwrap()
        .start_service("user-svc")
        .await
        .unwrap();
    eventually("login to work again", WAIT, || async {
        (app.login("ada@example.com", PASSWORD).await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_downtime_and_retired_keys_are_refused() {
    let app = App::start_with(|c| {
        c.auth.bootstrap_admin_email = Some(ADMIN.into());
        c.rate_limit.jwks_cache_secs = 1;
    })
    .await;
    let admin = app.sign_up_verified(ADMIN).await;
    let old_kid = app.get("/api/v1/admin/keys", Some(&admin)).await.1["signing"]
        .as_str()
        .unwrap()
        .to_string();

    let rotated = app
        .send(
            Method::POST,
            "/api/v1/admin/keys/rotate",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new_kid = rotated.text("signing");
    assert_ne!(new_kid, old_kid);
    let jwks: Value = app
        .http
        .get(format!(
            "{}/.well-known/jwks.json",
            app.stack.as_ref().unwrap().config.user.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        published.contains(&old_kid.as_str()) && published.contains(&new_kid.as_str()),
        "{published:?}"
    );

    // During the overlap both the old token and a new one work.
    assert_eq!(app.get("/api/v1/tasks", Some(&admin)).await.0, 200);
    let fresh = app.login(ADMIN, PASSWORD).await.text("access_token");
    let header = jsonwebtoken::decode_header(&fresh).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    let reply = app.get("/api/v1/tasks", Some(&fresh)).await;
    assert_eq!(reply.0, 200, "{}", reply.1);

    // The signing key cannot be retired; the old one can, and its tokens stop working.
    let refused = app
        .send(
            Method::POST,
            &format!("/api/v1/admin/keys/{new_kid}/retire"),
            Some(&fresh),
            None,
        )
        .await;
    assert_eq!(refused.status, 409);
    let retired = app
        .send(
            Method::POST,
            &format!("/api/v1/admin/keys/{old_kid}/retire"),
            Some(&fresh),
            None,
        )
        .await;
    assert_eq!(retired.status, 200, "{:?}", retired.body);
    eventually("the old key's token to be refused", WAIT, || async {
        (app.get("/api/v1/tasks", Some(&admin)).await.0 == 401).then_some(())
    })
    .await;
    assert_eq!(app.get("/api/v1/tasks", Some(&fresh)).await.0, 200);
}

/// A Redis server of this test's own, so it can be stopped without disturbing other tests.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        Self {
            port,
            child: Some(child),
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn wait_up(&self) {
        let url = format!("redis://127.0.0.1:{}", self.port);
        eventually("the private Redis to answer", WAIT, || async {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        })
        .await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_logins_fail_closed_and_the_api_keeps_serving() {
    let port = PrivateRedis::free_port();
    let mut redis = PrivateRedis::start(port);
    redis.wait_up().await;
    let app = App::start_with(|c| c.redis.url = format!("redis://127.0.0.1:{port}").into()).await;
    app.sign_up("ada@example.com").await;
    let login = app.login("ada@example.com", PASSWORD).await;
    let token = login.text("access_token");
    // A second session, ended before Redis goes: its token must stay refused.
    let ended = app
        .login("ada@example.com", PASSWORD)
        .await
        .text("access_token");
    let logout = app
        .send(Method::POST, "/api/v1/auth/logout", Some(&ended), None)
        .await;
    assert_eq!(logout.status, 204);

    redis.stop();
    // Without Redis the gateway asks user-svc (PostgreSQL) whether a session is live.
    assert_eq!(app.get("/api/v1/tasks", Some(&ended)).await.0, 401);
    let refused = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(refused.body["detail"].as_str().unwrap().contains("redis"));
    assert_eq!(app.get("/api/v1/tasks", Some(&token)).await.0, 200);
    let (status, _) = app
        .post(
            "/api/v1/tasks",
            Some(&token),
            json!({"title": "Still works"}),
        )
        .await;
    assert_eq!(status, 201);

    // Redis is back, empty: the old access token's session is unknown until a refresh (checked
    // against PostgreSQL) records it again.
    let redis = PrivateRedis::start(port);
    redis.wait_up().await;
    eventually("login to work again", WAIT, || async {
        (app.login("ada@example.com", PASSWORD).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(app.get("/api/v1/tasks", Some(&token)).await.0, 401);
    let refreshed = app
        .send(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": login.text("refresh_token") })),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);
    assert_eq!(
        app.get("/api/v1/tasks", Some(&refreshed.text("access_token")))
            .await
            .0,
        200
    );
}

/// A plain connection to the test's Redis, as another gateway replica or user-svc would have.
async fn redis_of(app: &App) -> redis::aio::MultiplexedConnection {
    use secrecy::ExposeSecret;
    let client = redis::Client::open(app.env.config.redis.url.expose_secret()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

fn session_of(token: &str) -> uuid::Uuid {
    claims_of(token)["sid"].as_str().unwrap().parse().unwrap()
}

/// Makes the gateway know `token`'s session live, and its key gone from Redis without a word:
/// once the gateway follows the ends, an answer from Redis is remembered, so the session still
/// passes after its key is deleted. (Until then each round puts the key back and tries again.)
async fn known_live_without_its_key(
    app: &App,
    redis: &redis::aio::MultiplexedConnection,
    token: &str,
) {
    let prefix = &app.env.config.redis.key_prefix;
    let key = shared::sessions::key(prefix, session_of(token));
    let user = claims_of(token)["sub"].as_str().unwrap().to_string();
    eventually("the gateway to remember the session live", WAIT, || {
        let (key, user) = (key.clone(), user.clone());
        let mut redis = redis.clone();
        async move {
            let _: () = redis::cmd("SET")
                .arg(&key)
                .arg(user)
                .arg("EX")
                .arg(3600)
                .query_async(&mut redis)
                .await
                .unwrap();
            assert_eq!(app.get("/api/v1/users/me", Some(token)).await.0, 200);
            let _: () = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            (app.get("/api/v1/users/me", Some(token)).await.0 == 200).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_known_live_is_refused_once_its_end_is_heard_or_the_subscription_lost() {
    // Ten minutes: without hearing of the end, the gateway would serve the session that long.
    let app = App::start_with(|c| c.auth.live_session_cache_ms = 600_000).await;
    let token = app.sign_up("ada@example.com").await;
    let mut redis = redis_of(&app).await;
    let prefix = app.env.config.redis.key_prefix.clone();

    known_live_without_its_key(&app, &redis, &token).await;
    // Ended where this gateway did not see it (another replica's logout): heard, refused.
    let channel = shared::sessions::ended_channel(&prefix);
    let _: () = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(session_of(&token).to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    eventually("the ended session to be refused", WAIT, || async {
        (app.get("/api/v1/users/me", Some(&token)).await.0 == 401).then_some(())
    })
    .await;

    // A second session, known live, whose end is missed: losing the subscription forgets it.
    let other = app
        .login("ada@example.com", PASSWORD)
        .await
        .text("access_token");
    known_live_without_its_key(&app, &redis, &other).await;
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query_async(&mut redis)
        .await
        .unwrap();
    eventually("the session to be asked about again", WAIT, || async {
        (app.get("/api/v1/users/me", Some(&other)).await.0 == 401).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reserved_in_batches_never_pass_the_limit_and_count_down_one_by_one() {
    let app = App::start_with(|c| c.rate_limit.api_requests = 200).await;
    let token = app.sign_up("ada@example.com").await;
    let mut admitted = vec![];
    let mut refused = 0;
    for _ in 0..230 {
        let reply = app
            .send(Method::GET, "/api/v1/tasks", Some(&token), None)
            .await;
        match reply.status {
            200 => {
                let state = reply.headers["ratelimit"].to_str().unwrap().to_string();
                let remaining = state
                    .split(";r=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap();
                admitted.push(remaining.parse::<u64>().unwrap());
            }
            429 => refused += 1,
            other => panic!("{other}: {:?}", reply.body),
        }
    }
    // Sign-up and login count under the auth policy: the first request here opens the window.
    assert_eq!((admitted.len(), refused), (200, 30));
    let expected: Vec<u64> = (0..200).rev().collect();
    assert_eq!(admitted, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_user_without_the_sessions_channel_still_ends_sessions() {
    // An ACL user given the keys but no channel (Redis 7's default for a new user), made before
    // the services start and used by all of them.
    let user = format!("tm{}", uuid::Uuid::new_v4().simple());
    let mut admin_url = None;
    let app = App::start_with(|c| {
        use secrecy::ExposeSecret;
        let url = c.redis.url.expose_secret().to_string();
        let mut admin = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", &user, "reset", "on", ">secret-password"])
            .arg(format!("~{}*", c.redis.key_prefix))
            .arg(&["resetchannels", "+@all"])
            .query(&mut admin)
            .unwrap();
        let mut as_user = url::Url::parse(&url).unwrap();
        as_user.set_username(&user).unwrap();
        as_user.set_password(Some("secret-password")).unwrap();
        c.redis.url = as_user.to_string().into();
        admin_url = Some(url);
    })
    .await;
    let token = app.sign_up("ada@example.com").await;
    assert_eq!(app.get("/api/v1/users/me", Some(&token)).await.0, 200);
    let logout = app
        .send(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(logout.status, 204, "{:?}", logout.body);
    assert_eq!(app.get("/api/v1/users/me", Some(&token)).await.0, 401);
    drop(app);
    let mut admin = redis::Client::open(admin_url.unwrap().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["DELUSER", &user])
        .query_async(&mut admin)
        .await
        .unwrap();
}

/// The account mails queued for `email` whose link opens `page`, newest first.
async fn account_links(app: &App, email: &str, page: &str) -> Vec<String> {
    let notify = app.db(&app.env.config.notify.database).await;
    let links = sqlx::query_scalar(
        "SELECT content->>'link' FROM messages
          WHERE kind = 'email.verification' AND content->>'to' = $1 AND content->>'link' LIKE $2
          ORDER BY created_at DESC",
    )
    .bind(email)
    .bind(format!("%/{page}?token=%"))
    .fetch_all(&notify)
    .await
    .unwrap();
    notify.close().await;
    links
}

async fn log_in_status(app: &App, email: &str, password: &str) -> u16 {
    let body = json!({"email": email, "password": password});
    app.post("/api/v1/auth/login", None, body).await.0
}

/// Password reset: the same 202 for any address; one link a minute, mailed to the account's
/// address; a refused password keeps the link; the link works once, sets the password, ends
/// every session and verifies the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_link_resets_the_password_once_and_ends_every_session() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    for email in ["ada@example.com", "nobody@example.com", "ADA@example.com"] {
        let (status, _) = app
            .post("/api/v1/auth/password-reset", None, json!({"email": email}))
            .await;
        assert_eq!(status, 202, "{email}");
    }
    let links = eventually("the reset mail", WAIT, || async {
        let links = account_links(&app, "ada@example.com", "reset-password").await;
        (!links.is_empty()).then_some(links)
    })
    .await;
    // The third asked within a minute of the first: still one link.
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(account_links(&app, "nobody@example.com", "reset-password")
        .await
        .is_empty());
    let token = links[0].split_once("token=").unwrap().1;
    let confirm = |password: &str| {
        let body = json!({"token": token, "new_password": password});
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/api/v1/auth/password-reset/confirm",
                None,
                Some(body),
            )
            .await
        }
    };
    let weak = confirm("password").await;
    assert_eq!((weak.status, weak.code()), (422, "weak_password"));
    let new_password = "a brand new long passphrase";
    assert_eq!(confirm(new_password).await.status, 204);
    let again = confirm("yet another long passphrase").await;
    assert_eq!((again.status, again.code()), (422, "invalid_token"));
    assert_eq!(app.get("/api/v1/users/me", Some(&ada)).await.0, 401);
    assert_eq!(log_in_status(&app, "ada@example.com", PASSWORD).await, 401);
    assert_eq!(
        log_in_status(&app, "ada@example.com", new_password).await,
        200
    );
    let user = app.db(&app.env.config.user.database).await;
    let verified: bool =
        sqlx::query_scalar("SELECT email_verified FROM users WHERE email = 'ada@example.com'")
            .fetch_one(&user)
            .await
            .unwrap();
    assert!(verified, "the link reached the address");
}

/// Changing the address: with the password, to an address nobody has; the account keeps its
/// address until the link mailed to the new one is opened, then signs in with the new one only,
/// and mail goes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_changes_only_once_the_new_one_opens_its_link() {
    let app = App::start().await;
    let ada = app.sign_up_verified_as("ada@example.com", "Ada").await;
    app.sign_up("bob@example.com").await;
    let change = |email: &str, password: &str| {
        let body = json!({"email": email, "password": password});
        let (app, ada) = (&app, ada.clone());
        async move {
            app.send(
                Method::POST,
                "/api/v1/users/me/email",
                Some(&ada),
                Some(body),
            )
            .await
        }
    };
    let reply = change("ada@new.example.com", "not my password").await;
    assert_eq!((reply.status, reply.code()), (403, "wrong_password"));
    let reply = change("BOB@example.com", PASSWORD).await;
    assert_eq!((reply.status, reply.code()), (409, "email_taken"));
    let reply = change("not an address", PASSWORD).await;
    assert_eq!(reply.status, 422);
    assert_eq!(change("ada@new.example.com", PASSWORD).await.status, 202);
    let reply = change("ada@other.example.com", PASSWORD).await;
    assert_eq!((reply.status, reply.code()), (429, "too_soon"));
    // Nothing changed yet.
    assert_eq!(log_in_status(&app, "ada@example.com", PASSWORD).await, 200);
    let link = app.verification_link("ada@new.example.com").await;
    let token = link.split_once("token=").unwrap().1;
    let (status, user) = app
        .post("/api/v1/auth/verify-email", None, json!({"token": token}))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(
        (&user["email"], &user["email_verified"]),
        (&json!("ada@new.example.com"), &json!(true))
    );
    assert_eq!(log_in_status(&app, "ada@example.com", PASSWORD).await, 401);
    assert_eq!(
        log_in_status(&app, "ada@new.example.com", PASSWORD).await,
        200
    );
    let id = user["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
    let notify = app.db(&app.env.config.notify.database).await;
    eventually("notify-svc mails the new address", WAIT, || async {
        sqlx::query_scalar::<_, String>("SELECT email FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&notify)
            .await
            .unwrap()
            .filter(|email| email == "ada@new.example.com")
    })
    .await;
}
