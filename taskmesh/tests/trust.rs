//! Trust between the parts (issue 13, decision 28): each test sends the requests a finding of the
//! security review sent, and now gets the refusal.

mod common;

use common::{App, WAIT};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use shared::identity::Identity;
use shared::internal::{Caller, Payload, Trust, HEADER_ASSERTION};

const EMPTY: Payload<'static> = Payload::EMPTY;
use shared::testkit::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `GET <path>` exactly as written (no client-side normalisation of `..` or `%2e`) and
/// returns the status and body.
async fn raw_get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

fn service_url(app: &App, service: &str) -> String {
    let config = &app.stack.as_ref().unwrap().config;
    match service {
        "user-svc" => config.user.url.clone(),
        "task-svc" => config.task.url.clone(),
        "notify-svc" => config.notify.url.clone(),
        "media-svc" => config.media.url.clone(),
        other => panic!("no service {other}"),
    }
}

fn trust_as(app: &App, service: &'static str) -> Trust {
    Trust::new(service, app.env.config.internal.secret.as_ref()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_obeys_no_header_and_no_assertion_it_cannot_check() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let ada = app.user_id(&token).await;
    let users = service_url(&app, "user-svc");
    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("x-taskmesh-user-id", &ada)
            .header("x-taskmesh-role", "admin")
            .header("x-taskmesh-session-id", uuid::Uuid::now_v7().to_string())
            .header("x-taskmesh-client-ip", "127.0.0.1")
    };

    // Finding 1, as reproduced: every user with their email, for anyone who reaches the port.
    let answer = forged(app.http.get(format!("{users}/api/v1/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    assert!(!answer.text().await.unwrap().contains("ada@example.com"));

    // Every service, on a route of each, and task-svc's internal route.
    let (task_id, _) = {
        let (status, task) = app
            .post("/api/v1/tasks", Some(&token), json!({ "title": "mine" }))
            .await;
        assert_eq!(status, 201);
        (task["id"].as_str().unwrap().to_string(), task)
    };
    let targets = [
        ("user-svc", "/api/v1/users/me".to_string()),
        ("task-svc", "/api/v1/tasks".to_string()),
        ("task-svc", format!("/internal/v1/tasks/{task_id}/access")),
        ("notify-svc", "/api/v1/notifications".to_string()),
        ("media-svc", "/api/v1/media".to_string()),
    ];
    for (service, path) in &targets {
        let url = format!("{}{path}", service_url(&app, service));
        let status = forged(app.http.get(&url)).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 401, "{service} {path} with forged headers");
    }

    // An assertion made with another secret, one made for another service, one for another
    // path, and one for another method are refused; the right one is obeyed (so the refusals
    // above are about the credential, not the route).
    let me = || format!("{users}/api/v1/users/me");
    let identity = Identity {
        user_id: ada.parse().unwrap(),
        role: shared::identity::Role::Member,
        session_id: None,
        scopes: None,
    };
    let caller = Caller::user("api-gateway", identity.clone(), None);
    let stranger = Trust::new(
        "api-gateway",
        Some(&SecretString::from(
            "not the platform's secret, 32+ bytes".to_string(),
        )),
    )
    .unwrap();
    let gateway = trust_as(&app, "api-gateway");
    let refused = [
        stranger.mint("user-svc", &Method::GET, "/api/v1/users/me", EMPTY, &caller),
        gateway.mint("task-svc", &Method::GET, "/api/v1/users/me", EMPTY, &caller),
        gateway.mint("user-svc", &Method::GET, "/api/v1/users", EMPTY, &caller),
        gateway.mint(
            "user-svc",
            &Method::DELETE,
            "/api/v1/users/me",
            EMPTY,
            &caller,
        ),
    ];
    for assertion in refused {
        let answer = app
            .http
            .get(me())
            .header(HEADER_ASSERTION, assertion)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 401);
    }
    let good = gateway.mint("user-svc", &Method::GET, "/api/v1/users/me", EMPTY, &caller);
    let send = |assertion| {
        app.http
            .get(me())
            .header(HEADER_ASSERTION, assertion)
            .send()
    };
    assert_eq!(send(good.clone()).await.unwrap().status().as_u16(), 200);
    // Issue 26, finding 5: the same assertion a second time (a replay of a request seen on the
    // network) is refused, though it is still within its life.
    assert_eq!(send(good).await.unwrap().status().as_u16(), 401);
    // Bound to the query too: made for another query, refused.
    let other_query = gateway.mint(
        "user-svc",
        &Method::GET,
        "/api/v1/users/me?a=1",
        EMPTY,
        &caller,
    );
    let answer = app
        .http
        .get(format!("{}?a=2", me()))
        .header(HEADER_ASSERTION, other_query)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);

    // task-svc's internal route answers another service, never an assertion of the gateway's.
    let path = format!("/internal/v1/tasks/{task_id}/access");
    let access = format!("{}{path}", service_url(&app, "task-svc"));
    let from = |service: &'static str| {
        trust_as(&app, service).mint(
            "task-svc",
            &Method::GET,
            &path,
            EMPTY,
            &Caller::user(service, identity.clone(), None),
        )
    };
    let answer = app
        .http
        .get(&access)
        .header(HEADER_ASSERTION, from("api-gateway"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 403);
    let answer: Value = app
        .http
        .get(&access)
        .header(HEADER_ASSERTION, from("media-svc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer["read"].as_bool(), answer["edit"].as_bool()),
        (Some(true), Some(true))
    );

    // user-svc's session check answers the gateway acting for nobody, never a user's assertion
    // or another service's.
    let live = "/internal/v1/sessions/live";
    let question = serde_json::to_vec(&json!({ "session_ids": [uuid::Uuid::nil()] })).unwrap();
    let asked = Payload::Bytes(&question);
    let ask = |assertion| {
        app.http
            .post(format!("{users}{live}"))
            .header(HEADER_ASSERTION, assertion)
            .header("content-type", "application/json")
            .body(question.clone())
            .send()
    };
    let as_user = gateway.mint("user-svc", &Method::POST, live, asked, &caller);
    assert_eq!(ask(as_user).await.unwrap().status().as_u16(), 403);
    let other = trust_as(&app, "task-svc").mint(
        "user-svc",
        &Method::POST,
        live,
        asked,
        &Caller::anonymous("task-svc", None),
    );
    assert_eq!(ask(other).await.unwrap().status().as_u16(), 403);
    let itself = gateway.mint(
        "user-svc",
        &Method::POST,
        live,
        asked,
        &Caller::anonymous("api-gateway", None),
    );
    let answer: Value = ask(itself).await.unwrap().json().await.unwrap();
    assert_eq!(answer["live"], json!([]));
    // Bound to the body: the gateway's assertion for one question, sent with another body (a
    // captured assertion put on a request of the attacker's own), is refused.
    let itself = gateway.mint(
        "user-svc",
        &Method::POST,
        live,
        asked,
        &Caller::anonymous("api-gateway", None),
    );
    let answer = app
        .http
        .post(format!("{users}{live}"))
        .header(HEADER_ASSERTION, itself)
        .json(&json!({ "session_ids": [uuid::Uuid::now_v7()] }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);

    // Probes and metrics stay open for the platform around the service.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = app
            .http
            .get(format!("{users}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_paths_that_walk_out_of_their_route() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    // Finding 2, as reproduced, and its encoded and tokened forms.
    let walks = [
        "/api/v1/auth/login/../../../../metrics",
        "/api/v1/auth/login/%2e%2e/%2e%2e/%2e%2e/%2e%2e/metrics",
        "/api/v1/auth/login/%2E%2E/%2E%2E/%2E%2E/%2E%2E/readyz",
        "/api/v1/tasks/../../../internal/v1/tasks/x/access",
        "/api/v1/tasks/x%2f..%2f..%2f..%2fmetrics",
        "/api/v1/tasks/x\\..\\..\\..\\metrics",
        "/api/v1/tasks/./x",
    ];
    for path in walks {
        for token in [None, Some(token.as_str())] {
            let (status, answer) = raw_get(&app.api, path, token).await;
            assert_eq!(status, 400, "{path}: {answer}");
            assert!(answer.contains("invalid_path"), "{path}: {answer}");
            assert!(!answer.contains("taskmesh_http_requests_total"), "{path}");
        }
    }
    // Only the documented prefixes are forwarded: a service's own paths are not routes here.
    for path in [
        "/internal/v1/tasks/x/access",
        "/api/v1/internal/tasks/x/access",
        "/api/v2/tasks",
        "/openapi.json/../metrics",
    ] {
        let (status, answer) = raw_get(&app.api, path, Some(&token)).await;
        assert!(
            status == 404 || status == 400,
            "{path} answered {status}: {answer}"
        );
        assert!(!answer.contains("\"read\""), "{path}");
    }
    // The documented routes still work, also for paths the upstream URL must encode (the
    // assertion names the path as the service sees it).
    let (status, _) = raw_get(&app.api, "/api/v1/tasks", Some(&token)).await;
    assert_eq!(status, 200);
    for path in ["/api/v1/tasks/\"{x}\"", "/api/v1/tasks/é"] {
        let (status, answer) = raw_get(&app.api, path, Some(&token)).await;
        assert!(
            status != 401 && status < 500,
            "{path} answered {status}: {answer}"
        );
    }
}

/// A listener on user-svc's address that accepts connections and never answers, counting them:
/// a key-set fetch that hangs.
async fn hang_user_svc(app: &mut App) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let stack = app.stack.as_mut().unwrap();
    stack.stop_service("user-svc").await.unwrap();
    let addr = stack.config.user.bind;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    accepted
}

/// A token shaped like user-svc's, with a `kid` nobody published (no account needed).
fn token_with_kid(kid: &str) -> String {
    use base64::Engine;
    let b64 = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let header = b64(json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid }));
    let claims = b64(
        json!({ "sub": uuid::Uuid::now_v7(), "role": "admin", "sid": uuid::Uuid::now_v7(),
        "iss": "taskmesh", "aud": "taskmesh-api", "exp": 4_000_000_000u64 }),
    );
    format!("{header}.{claims}.{}", "A".repeat(86))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_key_ids_cannot_stall_authenticated_requests() {
    let mut app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let (status, _) = app.get("/api/v1/tasks", Some(&token)).await;
    assert_eq!(status, 200);
    // Finding 4: from now on a key-set fetch hangs until its timeout.
    let accepted = hang_user_svc(&mut app).await;

    // A stream of tokens with unknown kids, all in flight at once.
    let forged: Vec<_> = (0..50)
        .map(|i| {
            let http = app.http.clone();
            let url = format!("{}/api/v1/tasks", app.api);
            let token = token_with_kid(&format!("forged-{i}"));
            tokio::spawn(async move {
                let answer = http.get(url).bearer_auth(token).send().await.unwrap();
                answer.status().as_u16()
            })
        })
        .collect();
    eventually("a key-set fetch to start", WAIT, || async {
        (accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(())
    })
    .await;

    // While that fetch hangs, a known key's token is answered: it waits for nothing.
    let (status, _) = app.get("/api/v1/tasks", Some(&token)).await;
    assert_eq!(status, 200);
    let pending = forged.iter().filter(|f| !f.is_finished()).count();
    assert!(
        pending > 0,
        "the forged requests were still waiting on the fetch"
    );

    let mut statuses = Vec::new();
    for request in forged {
        statuses.push(request.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // They shared one fetch: 50 unknown kids, not 50 fetches.
    let fetches = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(fetches <= 2, "{fetches} fetches for 50 forged kids");

    // A kid just found unknown is refused without another fetch.
    let again = token_with_kid("forged-7");
    let (status, _) = app.get("/api/v1/tasks", Some(&again)).await;
    assert_eq!(status, 401);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), fetches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_cache_never_keeps_a_token() {
    let app = App::start().await;
    app.sign_up("ada@example.com").await;
    // Finding 10: a login with a key was kept, tokens and all, for 24 hours, and replayed.
    let login = || {
        app.http
            .post(format!("{}/api/v1/auth/login", app.api))
            .header("idempotency-key", "login-1")
            .json(&json!({ "email": "ada@example.com", "password": common::PASSWORD }))
    };
    let first = common::Reply::read(login().send().await.unwrap()).await;
    let second = common::Reply::read(login().send().await.unwrap()).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert!(second.headers.get("idempotent-replayed").is_none());
    assert_ne!(first.body["refresh_token"], second.body["refresh_token"]);
    let refresh = app
        .http
        .post(format!("{}/api/v1/auth/refresh", app.api))
        .header("idempotency-key", "refresh-1")
        .json(&json!({ "refresh_token": first.body["refresh_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status().as_u16(), 200);

    // Nothing under the cache's keys holds a token (and a task creation with a key still is
    // kept, so the scan looks where the cache writes).
    let token = first.text("access_token");
    let (status, _) = {
        let answer = app
            .http
            .post(format!("{}/api/v1/tasks", app.api))
            .bearer_auth(&token)
            .header("idempotency-key", "task-1")
            .json(&json!({ "title": "kept" }))
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), ())
    };
    assert_eq!(status, 201);
    let entries = app.idempotency_entries().await;
    assert_eq!(entries.len(), 1, "only the task creation is kept");
    for value in entries {
        assert!(!value.contains("access_token") && !value.contains("refresh_token"));
    }
}

/// A login as `email` arriving through one trusted proxy with this `X-Forwarded-For`.
async fn login_via(app: &App, forwarded_for: &str, email: &str, password: &str) -> common::Reply {
    let answer = app
        .http
        .post(format!("{}/api/v1/auth/login", app.api))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    common::Reply::read(answer).await
}

fn retry_after(reply: &common::Reply) -> u64 {
    reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_elsewhere_is_slowed_down_while_the_owner_signs_in() {
    let app = App::start_with(|c| {
        c.rate_limit.trusted_proxies = 1;
        c.auth.max_failed_logins_per_source = 3;
        c.auth.max_failed_logins_per_account = 20;
    })
    .await;
    app.sign_up("ada@example.com").await;
    let owner = "203.0.113.5";
    let wrong = "not the password at all";

    // Findings 6 and 7: the attacker writes the owner's address as the first X-Forwarded-For
    // entry; the proxy appends the attacker's real one, which is the one that counts.
    let attacker = format!("{owner}, 198.51.100.7");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            login_via(&app, &attacker, "ada@example.com", wrong)
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401]);
    let refused = login_via(&app, &attacker, "ada@example.com", common::PASSWORD).await;
    assert_eq!(
        (refused.status, refused.code()),
        (429, "too_many_login_attempts")
    );
    assert_eq!(retry_after(&refused), 1);

    // The owner, from their own address, signs in at once.
    let signed_in = login_via(&app, owner, "ada@example.com", common::PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);

    // The attacker's waits grow: after the first one passes, one more guess, then 2 s.
    eventually("the attacker's first wait to pass", WAIT, || async {
        let reply = login_via(&app, &attacker, "ada@example.com", wrong).await;
        (reply.status == 401).then_some(())
    })
    .await;
    let refused = login_via(&app, &attacker, "ada@example.com", wrong).await;
    assert_eq!(refused.status, 429);
    assert_eq!(retry_after(&refused), 2);

    // IPv6: the addresses of one /64 are one source; the next /64 is another.
    for i in 1..=3 {
        let reply = login_via(
            &app,
            &format!("2001:db8:7:7::{i}"),
            "ada@example.com",
            wrong,
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    let rotated = login_via(&app, "2001:db8:7:7::99", "ada@example.com", wrong).await;
    assert_eq!(rotated.status, 429);
    let next_network = login_via(&app, "2001:db8:7:8::1", "ada@example.com", wrong).await;
    assert_eq!(next_network.status, 401);
    let owner_again = login_via(&app, owner, "ada@example.com", common::PASSWORD).await;
    assert_eq!(owner_again.status, 200);

    // An attacker with many addresses: one guess from each new one, until the account's budget
    // for sources it never signed in from (20 in this test) is spent. The owner, from where
    // they signed in before, is not held by it.
    let mut guesses = 0;
    let refused = loop {
        guesses += 1;
        assert!(
            guesses <= 40,
            "the account's budget for unknown sources never ran out"
        );
        let reply = login_via(
            &app,
            &format!("192.0.2.{guesses}"),
            "ada@example.com",
            wrong,
        )
        .await;
        if reply.status == 429 {
            break reply;
        }
        assert_eq!(reply.status, 401);
    };
    assert_eq!(refused.code(), "too_many_login_attempts");
    let owner_again = login_via(&app, owner, "ada@example.com", common::PASSWORD).await;
    assert_eq!(owner_again.status, 200, "{:?}", owner_again.body);
}

/// Issue 26, finding 5: with one shared secret any service could make an assertion for any
/// other, as the gateway, for any user. A service given only its own keys (`taskmesh keys`) can
/// call what it calls, as itself, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_given_only_its_keys_cannot_make_assertions_for_another() {
    use base64::Engine;
    use shared::internal::keys;
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let ada = app.user_id(&token).await;
    let (status, task) = app
        .post("/api/v1/tasks", Some(&token), json!({ "title": "mine" }))
        .await;
    assert_eq!(status, 201);
    let task_id = task["id"].as_str().unwrap();
    let secret = app.env.config.internal.secret.as_ref().unwrap();
    let rendered = keys::render(secret, "media-svc");
    let internal = shared::config::InternalConfig {
        keys: Some(SecretString::from(rendered.clone())),
        ..Default::default()
    };
    let media = Trust::from_config("media-svc", &internal).unwrap();
    let identity = Identity {
        user_id: ada.parse().unwrap(),
        role: shared::identity::Role::Admin,
        session_id: None,
        scopes: None,
    };
    let caller = Caller::user("media-svc", identity, None);
    let get = |service: &str, path: &str, assertion| {
        let url = format!("{}{path}", service_url(&app, service));
        app.http.get(url).header(HEADER_ASSERTION, assertion).send()
    };

    // Its own call: task-svc's access question.
    let access = format!("/internal/v1/tasks/{task_id}/access");
    let own = media.mint("task-svc", &Method::GET, &access, EMPTY, &caller);
    let answer = get("task-svc", &access, own).await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);

    // A service it does not call: it holds no key for it.
    let me = "/api/v1/users/me";
    let forged = media.mint("user-svc", &Method::GET, me, EMPTY, &caller);
    assert_eq!(
        get("user-svc", me, forged).await.unwrap().status().as_u16(),
        401
    );

    // As the gateway, with the one key it has for task-svc: refused whether it names itself or
    // the gateway as the key's owner.
    let key = rendered
        .split(',')
        .find_map(|entry| entry.strip_prefix("media-svc>task-svc:"))
        .unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    let now = jsonwebtoken::get_current_timestamp();
    for kid in ["api-gateway", "media-svc"] {
        let claims = json!({
            "iss": "api-gateway", "aud": "task-svc", "exp": now + 10, "nbf": now,
            "jti": format!("{:032x}", rand::random::<u128>()),
            "htm": "GET", "htp": "/api/v1/tasks",
            "bd": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
            "sub": ada, "role": "admin",
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.to_string());
        let key = jsonwebtoken::EncodingKey::from_secret(&key);
        let forged = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let answer = get("task-svc", "/api/v1/tasks", forged.parse().unwrap());
        assert_eq!(answer.await.unwrap().status().as_u16(), 401, "kid {kid}");
    }
}
