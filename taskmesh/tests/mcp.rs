//! The MCP endpoint at `/mcp`, with the official MCP Python SDK as the agent
//! (tests/mcp/agent.py): initialize, list tools, create a task and see it through REST, create a
//! job as an MCP Task and follow it to `completed`, a token without `jobs:write` refused naming
//! the scope, a revoked token refused on the next call, and the OAuth metadata a client without
//! a token is pointed at.

mod common;

use common::jobs::job_config;
use common::App;
use reqwest::Method;
use serde_json::{json, Value};

/// A token of `session`'s user with `scopes`: (token, id).
async fn token(app: &App, session: &str, scopes: &[&str]) -> (String, String) {
    let body = json!({ "name": "agent", "scopes": scopes });
    let made = app
        .send(Method::POST, "/api/v1/tokens", Some(session), Some(body))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    (made.text("token"), made.text("id"))
}

/// Runs the agent's `scenario`; its JSON results.
async fn agent(args: Vec<String>) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/mcp/agent.py");
    let output = tokio::process::Command::new(common::venv_python())
        .arg(script)
        .args(&args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stdout}\n{stderr}", args[0]);
    eprintln!("agent {}: {stdout}", args[0]);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_through_mcp_with_its_owners_rights_and_its_tokens_scopes() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up("ada@example.com").await;
    let all = [
        "tasks:read",
        "tasks:write",
        "jobs:write",
        "notifications:read",
        "notifications:write",
    ];
    let (full, _) = token(&app, &ada, &all).await;
    let done = agent(vec!["main".into(), app.api.clone(), full, "inproc".into()]).await;

    // What the agent made is Ada's, as REST shows it.
    let task_id = done["task_id"].as_str().unwrap();
    let task = app.task(&ada, task_id).await;
    assert_eq!(
        (task["title"].as_str(), task["status"].as_str()),
        (Some("from an agent"), Some("done"))
    );
    assert_eq!(task["priority"], "high");
    let job = app.task(&ada, done["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        done["statuses"].as_array().unwrap().last().unwrap(),
        "completed"
    );
    // Someone else sees none of it.
    let bob = app.sign_up("bob@example.com").await;
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{task_id}"), Some(&bob))
        .await;
    assert_eq!(status, 404);

    // Without jobs:write: refused, naming the scope, and no job made.
    let (tasks_only, _) = token(&app, &ada, &["tasks:read", "tasks:write"]).await;
    let refused = agent(vec!["no-jobs".into(), app.api.clone(), tasks_only]).await;
    assert_eq!(refused["refused"]["status"], 403);
    let (_, mine) = app.get("/api/v1/tasks?q=allowed", Some(&ada)).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, none) = app.get("/api/v1/tasks?q=not%20allowed", Some(&ada)).await;
    assert!(none["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["title"] != "not allowed"));

    // Revoked between two calls: the next is refused.
    let (doomed, id) = token(&app, &ada, &["tasks:read"]).await;
    agent(vec!["revoked".into(), app.api.clone(), doomed, ada, id]).await;
}
