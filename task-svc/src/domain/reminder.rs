//! The `task.due_soon` reminder: an outbox row whose `available_at` is the due date minus the
//! configured lead time, so it survives restarts and is published exactly when it falls due.
//! Whenever a task's due date or status changes, its pending reminder is replaced (or dropped
//! for a task that is done, cancelled or without a due date). A reminder the relay is
//! publishing at that moment is locked; the delete waits and then finds it already sent.

use chrono::{Duration, Utc};
use shared::{
    events::{CloudEvent, TaskDueSoon},
    outbox,
};

use crate::{domain::task::Task, SERVICE};

/// The reminder a task with no pending one needs (a new task), if any.
pub fn first(task: &Task, lead_secs: u64) -> Result<Option<outbox::Pending>, sqlx::Error> {
    let open = task.status.is_open();
    let Some(due_at) = task.due_at.filter(|due| open && *due > Utc::now()) else {
        return Ok(None);
    };
    // Due sooner than the lead time: remind now.
    let at = (due_at - Duration::seconds(lead_secs as i64)).max(Utc::now());
    let reminder = TaskDueSoon {
        task_id: task.id,
        owner_id: task.owner_id,
        assignee_id: task.assignee_id,
        title: task.title.clone(),
        due_at,
    };
    let route = outbox::Route {
        available_at: Some(at),
        ..Default::default()
    };
    outbox::Pending::new(CloudEvent::new(SERVICE, reminder), route).map(Some)
}
