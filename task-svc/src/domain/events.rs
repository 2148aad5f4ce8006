//! Every event task-svc publishes about tasks and jobs, built here and only here, in their fixed
//! order within a transaction: a new task's `task.created` first (consumers see a task before
//! what happens to it), then its job's first dispatch and pool announcement, `task.assigned`,
//! and the due-soon reminder; a change's `task.updated`, then `task.status_changed` (and
//! `task.completed` when it is done), then `task.assigned`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use shared::{
    events::{
        CloudEvent, JobCancel, JobDispatch, TaskAssigned, TaskCommented, TaskCompleted,
        TaskCreated, TaskDead, TaskDeleted, TaskFailed, TaskMentioned, TaskStatusChanged,
        TaskUpdated,
    },
    outbox::{self, Pending, Route},
};
use uuid::Uuid;

use crate::{domain::job::ParsedJob, domain::status::Status, domain::task::Task, SERVICE};

/// The dispatch of attempt `attempt` of `task`'s job (not before `at`), and its new id.
pub fn dispatch_event(
    task: &Task,
    job: &ParsedJob,
    attempt: i32,
    at: Option<DateTime<Utc>>,
) -> Result<(Uuid, outbox::Pending), sqlx::Error> {
    let dispatch_id = Uuid::now_v7();
    let message = JobDispatch {
        task_id: task.id,
        dispatch_id,
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        pool: job.pool.clone(),
        attempt,
        max_attempts: job.max_attempts,
        timeout_ms: job.timeout_ms,
        idempotency_key: task.id.to_string(),
        priority: task.priority.as_str().into(),
        workflow_id: job.step.as_ref().map(|s| s.workflow_id),
        step: job.step.as_ref().map(|s| s.step.clone()),
        inputs: job.step.as_ref().and_then(|s| s.inputs.clone()),
        item: job.step.as_ref().and_then(|s| s.item.clone()),
    };
    let route = Route {
        routing_key: Some(format!("job.dispatch.{}", job.pool)),
        available_at: at,
        priority: Some(task.priority.amqp()),
    };
    Ok((
        dispatch_id,
        outbox::Pending::new(CloudEvent::new(SERVICE, message), route)?,
    ))
}

/// `task.assigned` for a job handed to `pool`.
pub fn assigned_event(task: &Task, pool: &str) -> Result<outbox::Pending, sqlx::Error> {
    let assigned = TaskAssigned {
        task_id: task.id,
        owner_id: task.owner_id,
        actor_id: Uuid::nil(),
        assignee_id: None,
        previous_assignee_id: None,
        title: task.title.clone(),
        pool: Some(pool.to_string()),
    };
    outbox::Pending::new(CloudEvent::new(SERVICE, assigned), Route::default())
}

fn event<T: shared::events::EventPayload>(payload: T) -> Result<Pending, sqlx::Error> {
    Pending::new(CloudEvent::new(SERVICE, payload), Route::default())
}

/// A new task's events in their order: `task.created`, `job` (its job's first dispatch and pool
/// announcement), `task.assigned` if `actor` gave it an assignee, then `reminder`.
pub fn of_creation(
    task: &Task,
    actor: Uuid,
    job: Vec<Pending>,
    reminder: Option<Pending>,
) -> Result<Vec<Pending>, sqlx::Error> {
    let mut events = vec![event(TaskCreated {
        task_id: task.id,
        owner_id: task.owner_id,
        title: task.title.clone(),
        status: task.status.as_str().into(),
        priority: task.priority.as_str().into(),
        assignee_id: task.assignee_id,
        channel_id: task.channel_id,
        due_at: task.due_at,
        job_kind: task.job.as_ref().map(|j| j.kind.clone()),
    })?];
    events.extend(job);
    if let Some(assignee_id) = task.assignee_id {
        events.push(event(TaskAssigned {
            task_id: task.id,
            owner_id: task.owner_id,
            actor_id: actor,
            assignee_id: Some(assignee_id),
            previous_assignee_id: None,
            title: task.title.clone(),
            pool: None,
        })?);
    }
    events.extend(reminder);
    Ok(events)
}

/// The events of `actor`'s change to `task` (now saved), whose `changes` map each changed field
/// to `{from, to}`, in their order: `task.updated`, `task.status_changed` (and
/// `task.completed` when the task is done), `task.assigned` when it has a new assignee.
pub fn of_change(
    task: &Task,
    actor: Uuid,
    changes: &Map<String, Value>,
    followers: Option<Vec<Uuid>>,
) -> Result<Vec<Pending>, sqlx::Error> {
    let mut events = vec![event(TaskUpdated {
        task_id: task.id,
        owner_id: task.owner_id,
        actor_id: actor,
        title: task.title.clone(),
        changed: changes.keys().cloned().collect(),
        version: task.version,
    })?];
    if let Some(change) = changes.get("status") {
        events.push(event(TaskStatusChanged {
            task_id: task.id,
            owner_id: task.owner_id,
            actor_id: actor,
            title: task.title.clone(),
            from: change["from"].as_str().unwrap_or_default().to_string(),
            to: task.status.as_str().into(),
            assignee_id: task.assignee_id,
            followers: followers.clone(),
        })?);
        if task.status == Status::Done {
            events.push(event(TaskCompleted {
                task_id: task.id,
                owner_id: task.owner_id,
                actor_id: actor,
                assignee_id: task.assignee_id,
                title: task.title.clone(),
                job_kind: None,
                followers,
            })?);
        }
    }
    if let (Some(change), Some(assignee_id)) = (changes.get("assignee_id"), task.assignee_id) {
        events.push(event(TaskAssigned {
            task_id: task.id,
            owner_id: task.owner_id,
            actor_id: actor,
            assignee_id: Some(assignee_id),
            previous_assignee_id: change["from"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok()),
            title: task.title.clone(),
            pool: None,
        })?);
    }
    Ok(events)
}

/// `task.deleted`, naming everyone who could see the task.
pub fn deleted(task: &Task, actor: Uuid, audience: Vec<Uuid>) -> Result<Pending, sqlx::Error> {
    event(TaskDeleted {
        task_id: task.id,
        owner_id: task.owner_id,
        actor_id: actor,
        audience,
    })
}

/// A comment's events: `task.commented` (`change`: created, edited or deleted), then a
/// `task.mentioned` for each person in `newly_named` but its author.
pub fn of_comment(
    task: &Task,
    comment: &crate::domain::comment::Comment,
    change: &str,
    newly_named: &[Uuid],
) -> Result<Vec<Pending>, sqlx::Error> {
    let mut events = vec![event(TaskCommented {
        task_id: task.id,
        comment_id: comment.id,
        author_id: comment.author_id,
        owner_id: task.owner_id,
        title: task.title.clone(),
        change: change.into(),
    })?];
    for &person in newly_named.iter().filter(|&&p| p != comment.author_id) {
        events.push(event(TaskMentioned {
            task_id: task.id,
            comment_id: comment.id,
            author_id: comment.author_id,
            mentioned_id: person,
            title: task.title.clone(),
            excerpt: crate::domain::comment::excerpt(&comment.body),
        })?);
    }
    Ok(events)
}

/// `task.completed` for a job that succeeded (continuing its report's trace).
pub fn completed_by_job(
    task: &Task,
    kind: &str,
    traceparent: Option<String>,
) -> CloudEvent<TaskCompleted> {
    let mut event = CloudEvent::new(
        SERVICE,
        TaskCompleted {
            task_id: task.id,
            owner_id: task.owner_id,
            actor_id: Uuid::nil(),
            assignee_id: None,
            title: task.title.clone(),
            job_kind: Some(kind.to_string()),
            followers: None,
        },
    );
    event.traceparent = traceparent;
    event
}

/// `task.failed`: attempt `attempt` of `max_attempts` failed with `error`; it runs again at
/// `retry_at`.
pub fn failed(
    task: &Task,
    job: (&str, &str),
    attempts: (i32, i32),
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<Pending, sqlx::Error> {
    let ((kind, pool), (attempt, max_attempts)) = (job, attempts);
    event(TaskFailed {
        task_id: task.id,
        owner_id: task.owner_id,
        title: task.title.clone(),
        kind: kind.to_string(),
        pool: pool.to_string(),
        attempt,
        max_attempts,
        error: error.to_string(),
        retry_at: Some(retry_at),
    })
}

/// `task.dead`, twice: to the pool's dead-letter queue (`job.dead.<pool>`, for the console and
/// replay) and as an event.
pub fn dead(
    task: &Task,
    job: (&str, &str),
    attempts: i32,
    error: &str,
) -> Result<Vec<Pending>, sqlx::Error> {
    let (kind, pool) = job;
    let dead = TaskDead {
        task_id: task.id,
        owner_id: task.owner_id,
        title: task.title.clone(),
        kind: kind.to_string(),
        pool: pool.to_string(),
        attempts,
        error: error.to_string(),
    };
    let route = Route {
        routing_key: Some(format!("job.dead.{pool}")),
        ..Route::default()
    };
    Ok(vec![
        Pending::new(CloudEvent::new(SERVICE, dead.clone()), route)?,
        event(dead)?,
    ])
}

/// `job.cancel`: workers stop the task's running job.
pub fn job_cancel(task_id: Uuid, dispatch_id: Option<Uuid>) -> Result<Pending, sqlx::Error> {
    event(JobCancel {
        task_id,
        dispatch_id,
    })
}

/// A workflow's event for its status: `workflow.created` while `running`, else the one of its
/// end; with how many steps it has and those that did not succeed.
pub fn workflow(
    workflow: &crate::domain::workflow_view::Workflow,
    steps: usize,
    failed_steps: Vec<String>,
) -> Result<Pending, sqlx::Error> {
    use crate::domain::workflow::WorkflowStatus;
    use shared::events::{
        WorkflowCancelled, WorkflowCompleted, WorkflowCreated, WorkflowFailed, WorkflowFields,
    };
    let fields = WorkflowFields {
        workflow_id: workflow.id,
        owner_id: workflow.owner_id,
        title: workflow.title.clone(),
        status: workflow.status.as_str().to_string(),
        steps,
        failed_steps,
    };
    match workflow.status {
        WorkflowStatus::Running => event(WorkflowCreated(fields)),
        WorkflowStatus::Completed => event(WorkflowCompleted(fields)),
        WorkflowStatus::Failed => event(WorkflowFailed(fields)),
        WorkflowStatus::Cancelled => event(WorkflowCancelled(fields)),
    }
}
