//! The tools: what each is for, its input schema (from the API's document, so the same types
//! as the REST route it calls), and the REST calls it makes. A tool does nothing a REST client
//! with the same token could not: the calls go through the gateway's own router.

use std::sync::Arc;

use rmcp::model::{TaskSupport, Tool, ToolAnnotations, ToolExecution};
use serde_json::{json, Map, Value};

use super::rest::{Problem, Rest};
use super::schemas::{self, Schemas};

/// How a tool acts, for the client's judgement.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
    Destructive,
}

struct Def {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    kind: Kind,
    schema: fn(&Schemas) -> Map<String, Value>,
}

fn with_id(mut schema: Map<String, Value>, what: &str) -> Map<String, Value> {
    schemas::require(&mut schema, "id", schemas::id(what));
    schema
}

fn only_id(what: &str) -> Map<String, Value> {
    with_id(schemas::any_object(), what)
}

const DEFS: &[Def] = &[
    Def { name: "search_tasks", title: "Search tasks", kind: Kind::Read,
        description: "Tasks the caller owns, is assigned or shares through a channel, newest first, filtered (status, priority, assignee_id, owner_id, channel_id, tag, due_before, due_after, q for full-text), sorted and paged (limit, cursor from next_cursor).",
        schema: |s| s.query("get", "/api/v1/tasks") },
    Def { name: "get_task", title: "Get a task", kind: Kind::Read,
        description: "One task with its history (who changed what, when) and its comments.",
        schema: |_| only_id("task") },
    Def { name: "create_task", title: "Create a task", kind: Kind::Write,
        description: "Creates a task for a person (not a job: use create_job). Returns the task.",
        schema: |s| {
            let mut body = s.body("post", "/api/v1/tasks");
            schemas::remove(&mut body, "job");
            body
        } },
    Def { name: "update_task", title: "Update a task", kind: Kind::Write,
        description: "Changes a task's fields (absent ones stay; null clears due_at, assignee_id, channel_id, parent_id, recurrence). Status moves follow todo -> in_progress -> done, cancelled, reopen to todo.",
        schema: |s| with_id(s.body("patch", "/api/v1/tasks/{id}"), "task") },
    Def { name: "assign_task", title: "Assign a task", kind: Kind::Write,
        description: "Assigns a task to a person named by their display name or email address, among the people who share a channel with the caller.",
        schema: |_| {
            let mut schema = only_id("task");
            let person = json!({ "type": "string", "minLength": 1, "maxLength": 100,
                "description": "The person's display name or email address" });
            schemas::require(&mut schema, "person", person);
            schema
        } },
    Def { name: "complete_task", title: "Complete a task", kind: Kind::Write,
        description: "Marks a task done (through in_progress if it was todo).",
        schema: |_| only_id("task") },
    Def { name: "comment_task", title: "Comment on a task", kind: Kind::Write,
        description: "Adds a Markdown comment to a task; people named with @ are told.",
        schema: |s| with_id(s.body("post", "/api/v1/tasks/{id}/comments"), "task") },
    Def { name: "create_job", title: "Create a job", kind: Kind::Write,
        description: "Creates an automated task that a worker pool runs (job: kind, payload, pool, run_at or cron, max_attempts, timeout_secs, unique_key, ...). Called as an MCP Task, it is followed until the job has run.",
        schema: |s| {
            let mut body = s.body("post", "/api/v1/tasks");
            let job = body.get("properties").and_then(|p| p.get("job")).cloned();
            let job = job.unwrap_or_else(|| Value::Object(schemas::any_object()));
            schemas::require(&mut body, "job", job);
            body
        } },
    Def { name: "get_job", title: "Get a job", kind: Kind::Read,
        description: "A job's task (its state, result and error) and every attempt (worker, start, end, outcome, error, progress).",
        schema: |_| only_id("job") },
    Def { name: "cancel_job", title: "Cancel a job", kind: Kind::Destructive,
        description: "Cancels a job: a queued one never starts, a running one is told to stop, a cron template stops.",
        schema: |_| only_id("job") },
    Def { name: "list_dead_jobs", title: "List dead jobs", kind: Kind::Read,
        description: "Jobs that used up their attempts (admin only).",
        schema: |s| s.query("get", "/api/v1/admin/jobs/dead") },
    Def { name: "replay_dead_jobs", title: "Replay dead jobs", kind: Kind::Write,
        description: "Runs dead jobs again with fresh attempts (admin only).",
        schema: |s| s.body("post", "/api/v1/admin/jobs/dead/replay") },
    Def { name: "list_notifications", title: "List notifications", kind: Kind::Read,
        description: "The caller's in-app notifications, newest first.",
        schema: |s| s.query("get", "/api/v1/notifications") },
    Def { name: "mark_notifications_read", title: "Mark notifications read", kind: Kind::Write,
        description: "Marks one notification read (id), or all of them (no id).",
        schema: |_| {
            let mut schema = schemas::any_object();
            schema.insert("properties".into(), json!({ "id": schemas::id("notification") }));
            schema
        } },
];

/// Every tool, its input schema read from `schemas`.
pub fn list(schemas: &Schemas) -> Vec<Tool> {
    DEFS.iter().map(|def| tool(def, schemas)).collect()
}

/// The tool named `name`, without its schema (for what rmcp checks of a call).
pub fn find(name: &str) -> Option<Tool> {
    let empty = Schemas::new(Value::Null);
    DEFS.iter()
        .find(|d| d.name == name)
        .map(|d| tool(d, &empty))
}

fn tool(def: &Def, schemas: &Schemas) -> Tool {
    let schema = schemas.finish((def.schema)(schemas));
    let annotations = match def.kind {
        Kind::Read => ToolAnnotations::new().read_only(true),
        Kind::Write => ToolAnnotations::new().read_only(false).destructive(false),
        Kind::Destructive => ToolAnnotations::new().read_only(false).destructive(true),
    };
    let support = match def.name {
        "create_job" => TaskSupport::Optional,
        _ => TaskSupport::Forbidden,
    };
    Tool::new(def.name, def.description, Arc::new(schema))
        .with_title(def.title)
        .with_annotations(annotations.open_world(false))
        .with_execution(ToolExecution::new().with_task_support(support))
}

/// A bad argument: 400 in the API's words.
pub fn invalid(detail: impl Into<String>) -> Problem {
    Problem {
        status: 400,
        title: "Bad Request".into(),
        code: "invalid_argument".into(),
        detail: Some(detail.into()),
    }
}

/// The id `name` of `args`, checked.
pub fn id_of(args: &Map<String, Value>, name: &str) -> Result<uuid::Uuid, Problem> {
    args.get(name)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("`{name}` must be a UUID")))
}

/// `path` with `args` as its query.
fn with_query(path: &str, args: &Map<String, Value>) -> String {
    let mut url = reqwest::Url::parse("http://gateway").expect("a URL");
    url.set_path(path);
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in args {
            match value {
                Value::String(s) => query.append_pair(name, s),
                Value::Null => continue,
                other => query.append_pair(name, &other.to_string()),
            };
        }
    }
    match url.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// Runs tool `name` with `args` for the agent behind `rest`.
pub async fn call(rest: &Rest, name: &str, mut args: Map<String, Value>) -> Result<Value, Problem> {
    match name {
        "search_tasks" => rest.get(&with_query("/api/v1/tasks", &args)).await,
        "get_task" => {
            let id = id_of(&args, "id")?;
            let task = rest.get(&format!("/api/v1/tasks/{id}")).await?;
            let history = rest.get(&format!("/api/v1/tasks/{id}/history")).await?;
            let comments = rest.get(&format!("/api/v1/tasks/{id}/comments")).await?;
            Ok(json!({ "task": task, "history": history, "comments": comments }))
        }
        "create_task" => {
            if args.contains_key("job") {
                return Err(invalid("a task with a `job` is made with create_job"));
            }
            rest.post("/api/v1/tasks", &Value::Object(args)).await
        }
        "create_job" => {
            if !args.get("job").is_some_and(Value::is_object) {
                return Err(invalid("`job` is required"));
            }
            rest.post("/api/v1/tasks", &Value::Object(args)).await
        }
        "update_task" => {
            let id = id_of(&args, "id")?;
            args.remove("id");
            rest.patch(&format!("/api/v1/tasks/{id}"), &Value::Object(args))
                .await
        }
        "assign_task" => assign(rest, &args).await,
        "complete_task" => {
            let id = id_of(&args, "id")?;
            let path = format!("/api/v1/tasks/{id}");
            let task = rest.get(&path).await?;
            if task["status"] == "todo" {
                rest.patch(&path, &json!({ "status": "in_progress" }))
                    .await?;
            }
            rest.patch(&path, &json!({ "status": "done" })).await
        }
        "comment_task" => {
            let id = id_of(&args, "id")?;
            args.remove("id");
            let path = format!("/api/v1/tasks/{id}/comments");
            rest.post(&path, &Value::Object(args)).await
        }
        "get_job" => {
            let id = id_of(&args, "id")?;
            let task = rest.get(&format!("/api/v1/tasks/{id}")).await?;
            let attempts = rest.get(&format!("/api/v1/tasks/{id}/attempts")).await?;
            Ok(json!({ "task": task, "attempts": attempts }))
        }
        "cancel_job" => {
            let id = id_of(&args, "id")?;
            rest.post(&format!("/api/v1/tasks/{id}/cancel"), &json!({}))
                .await
        }
        "list_dead_jobs" => {
            rest.get(&with_query("/api/v1/admin/jobs/dead", &args))
                .await
        }
        "replay_dead_jobs" => {
            rest.post("/api/v1/admin/jobs/dead/replay", &Value::Object(args))
                .await
        }
        "list_notifications" => rest.get(&with_query("/api/v1/notifications", &args)).await,
        "mark_notifications_read" => match args.get("id") {
            Some(_) => {
                let id = id_of(&args, "id")?;
                let path = format!("/api/v1/notifications/{id}/read");
                rest.post(&path, &json!({})).await
            }
            None => {
                rest.post("/api/v1/notifications/read-all", &json!({}))
                    .await
            }
        },
        other => Err(invalid(format!("there is no tool `{other}`"))),
    }
}

/// Assigns by a person's name or address: the one the person search finds, or the one whose
/// name is exactly the text among several.
async fn assign(rest: &Rest, args: &Map<String, Value>) -> Result<Value, Problem> {
    let id = id_of(args, "id")?;
    let person = args
        .get("person")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("`person` must be a name or an email address"))?;
    let found = rest
        .get(&with_query("/api/v1/users/search", &json_map("q", person)))
        .await?;
    let people = found["items"].as_array().cloned().unwrap_or_default();
    let exact: Vec<&Value> = people
        .iter()
        .filter(|p| {
            p["display_name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(person))
        })
        .collect();
    let chosen = match (people.as_slice(), exact.as_slice()) {
        ([one], _) => one,
        (_, [one]) => *one,
        ([], _) => {
            return Err(invalid(format!(
                "nobody called {person:?} shares a channel with you"
            )))
        }
        (many, _) => {
            let names: Vec<&str> = many
                .iter()
                .filter_map(|p| p["display_name"].as_str())
                .collect();
            return Err(invalid(format!(
                "{person:?} could be any of: {}; give the email address",
                names.join(", ")
            )));
        }
    };
    let body = json!({ "assignee_id": chosen["id"] });
    rest.patch(&format!("/api/v1/tasks/{id}"), &body).await
}

fn json_map(name: &str, value: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(name.into(), json!(value));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_and_only_create_job_may_be_a_task() {
        let empty = Schemas::new(Value::Null);
        for tool in list(&empty) {
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
            let task = tool.task_support() == TaskSupport::Optional;
            assert_eq!(task, tool.name == "create_job", "{}", tool.name);
        }
        assert!(find("create_job").is_some() && find("rm_rf").is_none());
        let query = json_map("q", "a b&c");
        assert_eq!(
            with_query("/api/v1/tasks", &query),
            "/api/v1/tasks?q=a+b%26c"
        );
    }
}
