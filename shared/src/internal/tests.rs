use super::*;

fn trust(service: &'static str, secret: &str) -> Trust {
    Trust::new(service, Some(&SecretString::from(secret.to_string()))).unwrap()
}

fn request(method: Method, target: &str, body: &'static [u8], assertion: HeaderValue) -> Request {
    axum::http::Request::builder()
        .method(method)
        .uri(target)
        .header(HEADER_ASSERTION, assertion)
        .body(Body::from(body))
        .unwrap()
}

async fn caller_of(trust: &Trust, request: Request) -> Option<Caller> {
    let admitted = trust.admit(request).await.ok()?;
    admitted.extensions().get::<Caller>().cloned()
}

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn ada() -> Caller {
    let identity = Identity {
        user_id: Uuid::now_v7(),
        role: Role::Member,
        session_id: Some(Uuid::now_v7()),
        scopes: None,
    };
    Caller::user("api-gateway", identity, Some("192.0.2.1".into()))
}

#[tokio::test]
async fn an_assertion_holds_for_its_service_method_path_query_and_body_once() {
    let gateway = trust("api-gateway", SECRET);
    let users = trust("user-svc", SECRET);
    let caller = ada();
    let mint = |method: &Method, target: &str, body: &[u8]| {
        gateway.mint("user-svc", method, target, Payload::Bytes(body), &caller)
    };
    let me = mint(&Method::GET, "/api/v1/users/me?x=1", b"");
    let seen = caller_of(
        &users,
        request(Method::GET, "/api/v1/users/me?x=1", b"", me.clone()),
    )
    .await;
    assert_eq!(seen, Some(caller.clone()));
    // The same assertion again, even for the very same request: refused.
    let again = request(Method::GET, "/api/v1/users/me?x=1", b"", me);
    assert!(users.admit(again).await.is_err());
    // Another path, method, query or body than the one it was made for.
    let post = |body: &[u8]| mint(&Method::POST, "/api/v1/users/me?x=1", body);
    let wrong = [
        request(
            Method::GET,
            "/api/v1/users",
            b"",
            mint(&Method::GET, "/api/v1/users/me", b""),
        ),
        request(
            Method::DELETE,
            "/api/v1/users/me",
            b"",
            mint(&Method::GET, "/api/v1/users/me", b""),
        ),
        request(
            Method::GET,
            "/api/v1/users/me?x=2",
            b"",
            mint(&Method::GET, "/api/v1/users/me?x=1", b""),
        ),
        request(
            Method::GET,
            "/api/v1/users/me",
            b"",
            mint(&Method::GET, "/api/v1/users/me?x=1", b""),
        ),
        request(
            Method::POST,
            "/api/v1/users/me?x=1",
            b"{\"role\":\"admin\"}",
            post(b"{}"),
        ),
        request(Method::POST, "/api/v1/users/me?x=1", b"", post(b"{}")),
    ];
    for wrong in wrong {
        assert!(users.admit(wrong).await.is_err());
    }
    // The body it was made for passes, and reaches the handler whole.
    let right = request(Method::POST, "/api/v1/users/me?x=1", b"{}", post(b"{}"));
    let admitted = users.admit(right).await.unwrap();
    let body = axum::body::to_bytes(admitted.into_body(), 10)
        .await
        .unwrap();
    assert_eq!(&body[..], b"{}");
    // Another service, no assertion, another secret.
    let tasks = trust("task-svc", SECRET);
    let get_me = || {
        request(
            Method::GET,
            "/api/v1/users/me",
            b"",
            mint(&Method::GET, "/api/v1/users/me", b""),
        )
    };
    assert!(tasks.admit(get_me()).await.is_err());
    let bare = axum::http::Request::builder()
        .uri("/api/v1/users/me")
        .body(Body::empty())
        .unwrap();
    assert!(users.admit(bare).await.is_err());
    let other = trust("user-svc", "another secret of at least 32 bytes!!");
    assert!(other.admit(get_me()).await.is_err());
    // During a rotation the old secret still passes, next to the new one.
    let new = SecretString::from("another secret of at least 32 bytes!!".to_string());
    let old = SecretString::from(SECRET.to_string());
    let rotating = Trust::rotating("user-svc", Some(&new), Some(&old)).unwrap();
    assert!(rotating.admit(get_me()).await.is_ok());
}

#[tokio::test]
async fn a_streamed_body_is_bound_by_its_declared_length() {
    let gateway = trust("api-gateway", SECRET);
    let media = trust("media-svc", SECRET);
    let upload = |length: Option<u64>, declared: &str| {
        let streamed = Payload::Streamed { length };
        let assertion = gateway.mint(
            "media-svc",
            &Method::PUT,
            "/api/v1/media/x/content",
            streamed,
            &ada(),
        );
        axum::http::Request::builder()
            .method(Method::PUT)
            .uri("/api/v1/media/x/content")
            .header(HEADER_ASSERTION, assertion)
            .header(axum::http::header::CONTENT_LENGTH, declared)
            .body(Body::from("abc"))
            .unwrap()
    };
    assert!(media.admit(upload(Some(3), "3")).await.is_ok());
    assert!(media.admit(upload(Some(3), "4")).await.is_err());
    assert!(media.admit(upload(None, "3")).await.is_err());
}

#[test]
fn a_short_or_missing_secret_is_refused() {
    assert!(Trust::new("user-svc", None).is_err());
    let short = SecretString::from("too short".to_string());
    assert!(Trust::new("user-svc", Some(&short)).is_err());
}
