//! The API contract: schemathesis generates requests from the gateway's merged `/openapi.json`
//! (valid and invalid ones, property-based) and checks every answer against the document: no
//! server error, only documented statuses and content types, bodies that match their schemas.

mod common;

use std::process::Stdio;

use common::App;
use serde_json::json;

/// The project's Python venv (scripts/python-env), which has schemathesis.
fn schemathesis() -> std::path::PathBuf {
    common::venv_python().with_file_name("schemathesis")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_of_the_api_is_documented() {
    let app = App::start_with(|c| {
        c.auth.bootstrap_admin_email = Some("admin@example.com".into());
        // The fuzzer sends thousands of requests a minute, from one user and one IP.
        c.rate_limit.api_requests = 1_000_000;
        c.rate_limit.auth_requests = 1_000_000;
        c.auth.max_failed_logins_per_ip = 1_000_000;
    })
    .await;
    let admin = app.sign_up_verified("admin@example.com").await;
    let member = app.sign_up("member@example.com").await;
    // So that the lists have items, whose schemas are checked too: a task and a channel.
    let (status, task) = app
        .post(
            "/api/v1/tasks",
            Some(&member),
            json!({"title": "Contract", "priority": "high"}),
        )
        .await;
    assert_eq!(status, 201);
    // And an attachment, with a thumbnail once processed.
    let png = common::media::png(32, 32);
    let uploaded = common::media::upload(
        &app,
        &member,
        task["id"].as_str().unwrap(),
        &[("a.png", png)],
    )
    .await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    let (status, _) = app
        .post(
            "/api/v1/channels",
            Some(&member),
            json!({"name": "contract"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, document) = app.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        document["x-taskmesh-unavailable"],
        json!([]),
        "every service's part is in the document"
    );
    let mut ids = std::collections::HashSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} repeats");
        }
    }

    // The whole API as a member (admin-only operations answer 403). Ending the session
    // (logout, logout-all, a password change) would take the token away. An event stream that
    // opens never ends, so a fuzzer's request to it would only time out: its refusals are
    // fuzzed below, and its events are checked by tests/stream.rs.
    fuzz(
        &app,
        &document,
        &member,
        &[
            "--exclude-path-regex",
            "^/api/v1/(auth/logout|users/me/password|events/stream)",
        ],
    )
    .await;
    // The stream's refusals: every ticket and Last-Event-ID the fuzzer makes up, with a token
    // that is not one.
    fuzz(
        &app,
        &document,
        "not-a-token",
        &["--include-path-regex", "^/api/v1/events/stream$"],
    )
    .await;
    // Then the admin-only operations as an admin, but for the signing keys: rotating, then
    // retiring the old key would refuse the admin's own token.
    fuzz(
        &app,
        &document,
        &admin,
        &[
            "--include-path-regex",
            "^/api/v1/(users$|users/[{]id[}]|admin/|workers|tasks/priority-model)",
            "--exclude-path-regex",
            "^/api/v1/admin/keys/",
        ],
    )
    .await;
}

/// Runs schemathesis on `document` through the gateway with `token`, on the operations
/// `filters` select, and fails the test on any failure it reports.
async fn fuzz(app: &App, document: &serde_json::Value, token: &str, filters: &[&str]) {
    let workdir = std::env::temp_dir().join(format!("taskmesh-contract-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let schema = workdir.join("openapi.json");
    std::fs::write(&schema, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    let output = tokio::process::Command::new(schemathesis())
        .arg("run")
        .arg(&schema)
        .args(["--url", &app.api])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
        ])
        .args(filters)
        .args(["--max-examples", &knob("TASKMESH_CONTRACT_EXAMPLES", "100")])
        .args(["--seed", &knob("TASKMESH_CONTRACT_SEED", "20261130")])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // One worker: with two, Hypothesis parses its own source from two threads at once, which
        // Python 3.11's `ast` cannot do (a "recursion depth mismatch" SystemError, now and then).
        .args(["--workers", "1", "--request-timeout", "30"])
        // Hypothesis finding generation slow on a loaded machine says nothing about the API.
        .args(["--suppress-health-check", "too_slow"])
        .args(["--generation-database", "none", "--no-color"])
        .current_dir(&workdir)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "schemathesis found undocumented answers ({}):\n{stdout}\n{stderr}",
        output.status
    );
    std::fs::remove_dir_all(&workdir).ok();
}

/// Every parameter is declared where its operation reads it: a path parameter names a segment
/// of its path, and a filter is an optional query parameter. (Filters declared as path
/// parameters, which OpenAPI makes required, left Swagger UI unable to run the lists.)
#[tokio::test(flavor = "multi_thread")]
async fn every_parameter_is_declared_where_its_operation_reads_it() {
    let app = App::start().await;
    let (status, document) = app.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut misplaced = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let place = parameter["in"].as_str().unwrap();
                if (place == "path") != path.contains(&format!("{{{name}}}")) {
                    misplaced.push(format!("{method} {path}: {name} in {place}"));
                }
            }
        }
    }
    assert_eq!(
        misplaced,
        Vec::<String>::new(),
        "parameters declared in the wrong place"
    );
    // The task list's filters, for one: in the query, none required.
    let filters = document["paths"]["/api/v1/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(filters.len() >= 10, "{filters:?}");
    for filter in filters {
        assert_eq!(filter["in"], "query", "{filter}");
        assert_ne!(filter["required"], true, "{filter}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_the_fuzzer_does_not_provoke_are_documented_problems_too() {
    let app = App::start().await;
    let member = app.sign_up("member@example.com").await;
    let (_, document) = app.get("/openapi.json", None).await;
    // A path segment that is not UTF-8 (axum's own rejection), on a documented operation.
    for (method, path, template) in [
        ("GET", "/api/v1/tasks/%FF", "/api/v1/tasks/{id}"),
        (
            "POST",
            "/api/v1/tasks/%FF/cancel",
            "/api/v1/tasks/{id}/cancel",
        ),
        ("GET", "/api/v1/users/%FF", "/api/v1/users/{id}"),
    ] {
        let reply = app
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.api))
            .bearer_auth(&member)
            .send()
            .await
            .unwrap();
        let reply = common::Reply::read(reply).await;
        assert_eq!(reply.status, 400, "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        let documented = &document["paths"][template][method.to_lowercase()]["responses"]["400"];
        assert!(
            documented["content"]["application/problem+json"].is_object(),
            "{method} {template}: {documented}"
        );
    }
    // Text with a NUL character, which PostgreSQL refuses: the client's mistake, not a 500.
    for (method, path, body, status, code) in [
        ("GET", "/api/v1/tasks?q=a%00b", None, 400, "invalid_text"),
        (
            "POST",
            "/api/v1/channels/join",
            Some(json!({"code": "AB\u{0}CD"})),
            404,
            "not_found",
        ),
    ] {
        let reply = app
            .send(method.parse().unwrap(), path, Some(&member), body)
            .await;
        assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        assert_eq!(reply.code(), code);
    }
    // A method the route does not have: 405 with `Allow`, as a problem document.
    let reply = app
        .send(reqwest::Method::PUT, "/api/v1/tasks", Some(&member), None)
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.code(), "method_not_allowed");
    assert!(reply.headers.contains_key("allow"));
}

/// A setting of the run: fixed by default so CI is reproducible; set the variable to explore
/// (another seed, more examples).
fn knob(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_string())
}
