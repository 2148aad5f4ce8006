//! Swagger UI in headless Chromium against the running platform: "Authorize" with a real token,
//! then "Try it out" on `GET /api/v1/users/me` and on `GET /api/v1/tasks` (filters left empty)
//! answers 200, with nothing refused by the page's Content Security Policy. Needs Debian's chromium and
//! `tests/browser/node_modules` (both installed by `scripts/test`).

mod common;

use common::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_tries_out_users_me_and_the_task_list_with_a_bearer_token() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    // Under a policy that keeps it out of other sites' frames; the browser run below fails on
    // anything the policy refuses.
    for path in ["/docs/", "/docs/swagger-initializer.js"] {
        let answer = reqwest::get(format!("{}{path}", app.api)).await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let csp = answer.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
    }
    common::browser::run("swagger.mjs", vec![app.api.clone(), token], "status 200").await;
}
