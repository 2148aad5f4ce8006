//! Running a script of `tests/browser/` (playwright-core in Debian's chromium, both installed
//! by `scripts/test`).

use std::path::PathBuf;
use std::process::Command;

/// Runs `node tests/browser/<script> <args>` and asserts it succeeded and printed `expect`.
pub async fn run(script: &str, args: Vec<String>, expect: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/browser")
        .join(script);
    let modules = script.with_file_name("node_modules");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test (or `npm ci --prefix tests/browser`)",
        modules.display()
    );
    let output =
        tokio::task::spawn_blocking(move || Command::new("node").arg(&script).args(&args).output())
            .await
            .unwrap()
            .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(expect),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}
