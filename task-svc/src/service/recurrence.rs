//! Recurring tasks: completing one creates the next, in the same transaction, with its fields,
//! due at the series' next occurrence ([`crate::domain::recurrence::next`]); the completed task
//! hands its rule on (it no longer recurs, so reopening and completing it again makes no
//! second copy).

use chrono::{DateTime, Utc};
use shared::outbox;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{events, reminder, status::Status, task::Task},
    error::TaskError,
    store,
};

/// The next task's due date and rule when `before` → `after` completes a recurring task (then
/// `after` stops recurring); `None` otherwise, or when its series has ended.
pub fn hand_on(before: &Task, after: &mut Task) -> Option<(DateTime<Utc>, String)> {
    if after.status != Status::Done || before.status == Status::Done {
        return None;
    }
    let rule = after.recurrence.take()?;
    crate::domain::recurrence::next(&rule, after.due_at, Utc::now())
}

/// Creates, in `tx`, the task after `done`: its title, description, priority, assignee (if
/// still active), channel, labels and parent, due at `due`, recurring by `rule`.
pub async fn create_next(
    tx: &mut PgConnection,
    done: &Task,
    (due, rule): (DateTime<Utc>, String),
    actor: Uuid,
    lead_secs: u64,
) -> Result<Task, TaskError> {
    let assignee = match done.assignee_id {
        Some(id) if store::tasks::user_active(tx, id).await? == Some(true) => Some(id),
        _ => None,
    };
    let new = store::tasks::NewTasks {
        ids: vec![Uuid::now_v7()],
        owner_id: done.owner_id,
        titles: vec![done.title.clone()],
        descriptions: vec![done.description.clone()],
        priorities: vec![done.priority],
        due_at: vec![Some(due)],
        assignees: vec![assignee],
        tags: vec![done.tags.clone()],
        channels: vec![done.channel_id],
        sources: vec![done.priority_source],
        statuses: vec![Status::Todo],
        parents: vec![done.parent_id],
        recurrences: vec![Some(rule)],
    };
    let task = store::tasks::insert_many(tx, &new)
        .await?
        .pop()
        .ok_or(sqlx::Error::RowNotFound)?;
    let reminder = reminder::first(&task, lead_secs)?;
    outbox::enqueue_all(tx, events::of_creation(&task, actor, vec![], reminder)?).await?;
    Ok(task)
}
