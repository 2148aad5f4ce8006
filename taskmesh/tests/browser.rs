//! Swagger UI in headless Chromium against the running platform: "Authorize" with a real token,
//! then "Try it out" on `GET /api/v1/users/me` answers 200. Needs Debian's chromium and
//! `tests/browser/node_modules` (both installed by `scripts/test`).

mod common;

use common::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_tries_out_users_me_with_a_bearer_token() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    common::browser::run("swagger.mjs", vec![app.api.clone(), token], "status 200").await;
}
