//! Resources and prompts. A task is `taskmesh://tasks/{id}` (with its history and comments), a
//! job `taskmesh://jobs/{id}` (with its attempts); the caller's newest tasks are listed. The
//! prompts bring what they are about along: "summarise my week" the caller's tasks,
//! "triage dead jobs" the dead jobs (an admin's).

use rmcp::model::{
    GetPromptResult, Prompt, PromptMessage, Resource, ResourceContents, ResourceTemplate, Role,
};
use serde_json::{json, Map, Value};

use super::rest::{Problem, Rest};

const TASKS: &str = "taskmesh://tasks/";
const JOBS: &str = "taskmesh://jobs/";

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{TASKS}{{id}}"), "task")
            .with_title("A task")
            .with_description("A task with its history and comments")
            .with_mime_type("application/json"),
        ResourceTemplate::new(format!("{JOBS}{{id}}"), "job")
            .with_title("A job")
            .with_description("A job (its task: state, result, error) with its attempts")
            .with_mime_type("application/json"),
    ]
}

/// The caller's newest tasks, as resources.
pub async fn list(rest: &Rest) -> Result<Vec<Resource>, Problem> {
    let page = rest.get("/api/v1/tasks?limit=20").await?;
    let items = page["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .map(|task| {
            let prefix = if task["job"].is_null() { TASKS } else { JOBS };
            let uri = format!("{prefix}{}", task["id"].as_str().unwrap_or_default());
            let name = task["title"].as_str().unwrap_or("task").to_string();
            Resource::new(uri, name).with_mime_type("application/json")
        })
        .collect())
}

/// What `uri` names.
pub async fn read(rest: &Rest, uri: &str) -> Result<ResourceContents, Problem> {
    let (tool, id) = match (uri.strip_prefix(TASKS), uri.strip_prefix(JOBS)) {
        (Some(id), _) => ("get_task", id),
        (_, Some(id)) => ("get_job", id),
        _ => return Err(super::tools::invalid(format!("no resource {uri}"))),
    };
    let mut args = Map::new();
    args.insert("id".into(), json!(id));
    let value = super::tools::call(rest, tool, args).await?;
    let text = serde_json::to_string_pretty(&value).expect("JSON serialises");
    Ok(ResourceContents::text(text, uri).with_mime_type("application/json"))
}

pub fn prompts() -> Vec<Prompt> {
    vec![
        Prompt::new(
            "summarise_my_week",
            Some("Summarise my week: what I finished, what is in progress, what is due or overdue"),
            None,
        ),
        Prompt::new(
            "triage_dead_jobs",
            Some("Triage the dead jobs: group them by cause and say which to replay, fix or drop (admin)"),
            None,
        ),
    ]
}

/// The prompt `name`, with what it is about.
pub async fn prompt(rest: &Rest, name: &str) -> Result<GetPromptResult, Problem> {
    let (description, text) = match name {
        "summarise_my_week" => {
            let tasks = rest.get("/api/v1/tasks?limit=100&sort=-created_at").await?;
            (
                "Summarise my week",
                format!(
                    "Summarise my week in Taskmesh for me, briefly: what I completed in the last \
                     seven days, what is in progress, what is overdue and what is due in the next \
                     seven days, and anything blocked or unassigned that needs a decision. Today is \
                     {}. These are my newest tasks (JSON); use the search_tasks and get_task tools \
                     for more.\n\n{}",
                    chrono::Utc::now().format("%A %Y-%m-%d"),
                    compact(&tasks["items"])
                ),
            )
        }
        "triage_dead_jobs" => {
            let dead = rest.get("/api/v1/admin/jobs/dead").await?;
            (
                "Triage dead jobs",
                format!(
                    "Triage these dead Taskmesh jobs (they used up their attempts). Group them by \
                     kind and by the cause their last error shows; for each group say whether to \
                     replay it (a passing failure: use replay_dead_jobs with their task ids), fix \
                     something first (say what), or leave it. Use get_job for a job's attempts.\n\n{}",
                    compact(&dead)
                ),
            )
        }
        other => {
            return Err(super::tools::invalid(format!(
                "there is no prompt `{other}`"
            )))
        }
    };
    let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
    result.description = Some(description.into());
    Ok(result)
}

/// `value` as JSON text, cut to a size a prompt can carry.
fn compact(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60_000) {
        Some((cut, _)) => format!("{}… (cut)", &text[..cut]),
        None => text,
    }
}
