//! Swagger UI in headless Chromium against the running platform: "Authorize" with a real token,
//! then "Try it out" on `GET /api/v1/users/me` answers 200. Needs Debian's chromium and
//! `tests/browser/node_modules` (both installed by `scripts/test`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::App;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_tries_out_users_me_with_a_bearer_token() {
    let app = App::start().await;
    let token = app.sign_up("ada@example.com").await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/swagger.mjs");
    let modules = script.with_file_name("node_modules");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test (or `npm ci --prefix tests/browser`)",
        modules.display()
    );
    let api = app.api.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .arg(&api)
            .arg(&token)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("status 200"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}
