//! The events a job's changes publish, built in one place.

use chrono::{DateTime, Utc};
use shared::{
    events::{CloudEvent, JobDispatch, TaskAssigned},
    outbox::{self, Route},
};
use uuid::Uuid;

use crate::{
    domain::job::{amqp_priority, ParsedJob},
    domain::task::Task,
    SERVICE,
};

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
        priority: task.priority.clone(),
    };
    let route = Route {
        routing_key: Some(format!("job.dispatch.{}", job.pool)),
        available_at: at,
        priority: Some(amqp_priority(&task.priority)),
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
