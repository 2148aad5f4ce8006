//! MCP Tasks (2025-11-25) for jobs: `create_job` called as a task answers at once with an MCP
//! Task whose id is the job's, and whose status follows the job's state (pending, scheduled,
//! queued, running, retrying: `working`; completed: `completed`; dead: `failed`; cancelled:
//! `cancelled`). `tasks/get`, `tasks/result` (once the job has ended), `tasks/list` and
//! `tasks/cancel` read and cancel the job through the REST API, so the Task lives as long as
//! the job and any gateway replica answers for it.

use std::time::Duration;

use rmcp::model::{CallToolResult, Meta, RelatedTaskMetadata, Task, TaskStatus};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::rest::{Problem, Rest};

/// How often a client is told to poll, and how often `tasks/result` looks.
pub const POLL: Duration = Duration::from_secs(1);

/// The longest `tasks/result` waits before answering that the job is still running (well
/// within the gateway's 30 s request limit; the client asks again).
const LONGEST_WAIT: Duration = Duration::from_secs(20);

/// The MCP status of a job in `state`.
pub fn status_of(state: &str) -> TaskStatus {
    match state {
        "completed" => TaskStatus::Completed,
        "dead" | "failed" => TaskStatus::Failed,
        "cancelled" => TaskStatus::Cancelled,
        _ => TaskStatus::Working,
    }
}

fn terminal(status: &TaskStatus) -> bool {
    !matches!(status, TaskStatus::Working | TaskStatus::InputRequired)
}

/// The Task of a job's task as the API answers it.
pub fn task_of(job: &Value) -> Task {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let state = job["status"].as_str().unwrap_or_default();
    let mut task = Task::new(
        text(&job["id"]),
        status_of(state),
        text(&job["created_at"]),
        text(&job["updated_at"]),
    )
    .with_poll_interval(POLL.as_millis() as u64);
    let message = match job["job"]["last_error"].as_str() {
        Some(error) if state != "completed" => format!("{state}: {error}"),
        _ => state.to_string(),
    };
    task = task.with_status_message(message);
    task
}

/// The job `task_id` names, as the caller may see it.
pub async fn job(rest: &Rest, task_id: &str) -> Result<Value, Problem> {
    let id: uuid::Uuid = task_id
        .parse()
        .map_err(|_| super::tools::invalid("a task id is a job's id (a UUID)"))?;
    let job = rest.get(&format!("/api/v1/tasks/{id}")).await?;
    if job["job"].is_null() {
        return Err(Problem {
            status: 404,
            title: "Not Found".into(),
            code: "not_found".into(),
            detail: Some("no such job".into()),
        });
    }
    Ok(job)
}

/// Waits until the job has ended (or `cancel`, or [`LONGEST_WAIT`]: 409 `still_working`);
/// its call's result.
pub async fn result(
    rest: &Rest,
    task_id: &str,
    cancel: &CancellationToken,
) -> Result<Value, Problem> {
    let started = std::time::Instant::now();
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(still_working()),
            _ = poll.tick() => {}
        }
        let job = job(rest, task_id).await?;
        let status = status_of(job["status"].as_str().unwrap_or_default());
        if terminal(&status) {
            return Ok(call_result(task_id, job, status));
        }
        if started.elapsed() > LONGEST_WAIT {
            return Err(still_working());
        }
    }
}

fn still_working() -> Problem {
    Problem {
        status: 409,
        title: "Conflict".into(),
        code: "still_working".into(),
        detail: Some("the job has not ended yet; ask again".into()),
    }
}

/// The `create_job` call's result once its job ended: the job, an error unless it completed.
fn call_result(task_id: &str, job: Value, status: TaskStatus) -> Value {
    let mut result = match status {
        TaskStatus::Completed => CallToolResult::structured(job),
        _ => CallToolResult::structured_error(job),
    };
    let mut meta = Map::new();
    meta.insert(
        RelatedTaskMetadata::META_KEY.into(),
        json!({ "taskId": task_id }),
    );
    result.meta = Some(Meta(meta));
    serde_json::to_value(result).expect("a result serialises")
}
