//! A task's life after creation: who sees it, reading, changing (with `If-Match`), deleting,
//! its history. Every change bumps its version, is recorded, and announces itself through the
//! outbox in the same transaction.

use serde_json::{Map, Value};
use shared::{identity::Identity, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::task::{
        assignable, check_description, check_if_match, diff, parse_tags, parse_title, Access,
        HistoryEntry, PrioritySource, Task, UpdateTask,
    },
    domain::{
        events, reminder,
        status::{self, Status},
    },
    error::TaskError,
    store,
    store::jobs::attach,
    AppState,
};

/// What `identity` may do with `task` (its channel's membership read here).
async fn access(
    conn: &mut PgConnection,
    task: &Task,
    identity: &Identity,
) -> Result<Access, sqlx::Error> {
    let channel = match task.channel_id {
        Some(channel) => {
            crate::store::channels::membership(conn, channel, identity.user_id).await?
        }
        None => None,
    };
    Ok(Access::of(task, identity, channel))
}

/// The assignee must be a known, active user (from task-svc's read model of users).
async fn check_assignee(conn: &mut PgConnection, assignee: Uuid) -> Result<(), TaskError> {
    assignable(store::tasks::user_active(conn, assignee).await?)
}

/// The task if `identity` may see it, and what they may do; 404 otherwise (also for a
/// malformed id).
pub async fn visible(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
    lock: bool,
) -> Result<(Task, Access), TaskError> {
    let id = Uuid::parse_str(id).map_err(|_| TaskError::NotFound("task"))?;
    let mut task = store::tasks::find(conn, id, lock)
        .await?
        .ok_or(TaskError::NotFound("task"))?;
    let access = access(conn, &task, identity).await?;
    if !access.read {
        return Err(TaskError::NotFound("task"));
    }
    attach(conn, std::slice::from_mut(&mut task)).await?;
    Ok((task, access))
}

/// The task if `identity` may see it; 404 otherwise.
pub async fn visible_task(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
) -> Result<Task, TaskError> {
    Ok(visible(conn, identity, id, false).await?.0)
}

/// The task, locked, if `identity` may see it, and whether they may edit it; 404 otherwise.
pub async fn visible_for_edit(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
) -> Result<(Task, bool), TaskError> {
    let (task, access) = visible(conn, identity, id, true).await?;
    Ok((task, access.edit))
}

fn unknown_parent() -> TaskError {
    TaskError::invalid("invalid_parent", "parent_id names no task you can see")
}

/// `parent` must be a task `identity` may see.
pub async fn check_parent(
    conn: &mut PgConnection,
    identity: &Identity,
    parent: Uuid,
) -> Result<(), TaskError> {
    match visible(conn, identity, &parent.to_string(), false).await {
        Ok(_) => Ok(()),
        Err(TaskError::NotFound(_)) => Err(unknown_parent()),
        Err(err) => Err(err),
    }
}

/// Task `task` may become a subtask of `parent`: one `identity` may see, not itself nor one of
/// its subtasks.
pub async fn check_reparent(
    conn: &mut PgConnection,
    identity: &Identity,
    task: Uuid,
    parent: Uuid,
) -> Result<(), TaskError> {
    check_parent(conn, identity, parent).await?;
    if store::relations::descends_from(conn, parent, task).await? {
        return Err(TaskError::invalid(
            "invalid_parent",
            "a task cannot be a subtask of itself or of one of its subtasks",
        ));
    }
    Ok(())
}

/// Task `id` as `identity` may see it, its description rendered.
pub async fn read(state: &AppState, identity: &Identity, id: &str) -> Result<Task, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let mut task = visible_task(&mut conn, identity, id).await?;
    task.description_html = Some(crate::domain::comment::render(&task.description));
    Ok(task)
}

/// Every recorded change of task `id`, oldest first.
pub async fn history(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<Vec<HistoryEntry>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let task = visible_task(&mut conn, identity, id).await?;
    Ok(store::tasks::history(&mut conn, task.id).await?)
}

/// Applies `request` to task `id` for `identity`, if `if_match` (the header's value, when
/// given) names its current version. The owner, the channel's owner and admins change every
/// field; the assignee only the status.
pub async fn update(
    state: &AppState,
    identity: &Identity,
    id: &str,
    if_match: Option<&str>,
    request: UpdateTask,
) -> Result<Task, TaskError> {
    let mut tx = state.pool.begin().await?;
    let (before, access) = visible(&mut tx, identity, id, true).await?;
    let assignee_may = before.assignee_id == Some(identity.user_id) && request.only_status();
    if !access.edit && !assignee_may {
        return Err(TaskError::Forbidden(
            "only the task's creator, its channel's owner or an admin can change this (its assignee can change the status)".into(),
        ));
    }
    check_if_match(if_match, &before)?;
    let mut after = before.clone();
    if let Some(title) = &request.title {
        after.title = parse_title(title)?;
    }
    if let Some(description) = &request.description {
        check_description(description)?;
        after.description = description.clone();
    }
    if let Some(priority) = request.priority {
        after.priority = priority;
        after.priority_source = PrioritySource::User;
    }
    if let Some(to) = &request.status {
        if before.job.is_some() {
            if to.parse::<Status>().ok() != Some(before.status) {
                return Err(TaskError::conflict(
                    "job_status",
                    "an automated task's status follows its job; cancel it with POST /api/v1/tasks/{id}/cancel",
                ));
            }
        } else {
            after.status = status::parse_person_status(to)?;
            status::check(before.status, after.status)?;
        }
    }
    if before.job.is_some() && matches!(request.assignee_id, Some(Some(_))) {
        return Err(TaskError::invalid(
            "invalid_job",
            "an automated task runs on a worker pool; it takes no assignee",
        ));
    }
    if let Some(due_at) = request.due_at {
        after.due_at = due_at;
    }
    if let Some(tags) = &request.tags {
        after.tags = parse_tags(tags)?;
    }
    if let Some(assignee) = request.assignee_id {
        if let (Some(new), true) = (assignee, assignee != before.assignee_id) {
            check_assignee(&mut tx, new).await?;
        }
        after.assignee_id = assignee;
    }
    place(&mut tx, identity, &request, &mut after).await?;
    let next = crate::service::recurrence::hand_on(&before, &mut after);
    let changes = diff(&before, &after);
    if changes.is_empty() {
        return Ok(before);
    }
    let moved = changes.contains_key("due_at") || changes.contains_key("status");
    // Who saw it before (another channel's members, the previous assignee) sees the change too.
    let mut audience = match changes.contains_key("channel_id") {
        true => crate::store::tasks::audience(&mut tx, &before).await?,
        false => Vec::from_iter(before.assignee_id),
    };
    let task = save(&mut tx, &after, identity.user_id, changes).await?;
    let lead = state.config.tasks.due_soon_lead_secs;
    if moved {
        reschedule(&mut tx, &task, lead).await?;
    }
    audience.extend(crate::store::tasks::audience(&mut tx, &task).await?);
    if let Some(next) = next {
        let actor = identity.user_id;
        let next =
            crate::service::recurrence::create_next(&mut tx, &task, next, actor, lead).await?;
        audience.extend(crate::store::tasks::audience(&mut tx, &next).await?);
    }
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    Ok(task)
}

/// Applies `request`'s channel, parent and recurrence to `after`: a channel the caller is a
/// member of, a parent they see (not the task nor one of its subtasks), a valid rule.
async fn place(
    tx: &mut PgConnection,
    identity: &Identity,
    request: &UpdateTask,
    after: &mut Task,
) -> Result<(), TaskError> {
    if let Some(channel) = request.channel_id {
        if let (Some(new), true) = (channel, channel != after.channel_id) {
            let membership = store::channels::membership(tx, new, identity.user_id).await?;
            if !membership.is_some_and(|(member, _)| member) {
                return Err(TaskError::NotFound("channel"));
            }
        }
        after.channel_id = channel;
    }
    if let Some(parent) = request.parent_id {
        if let (Some(new), true) = (parent, parent != after.parent_id) {
            check_reparent(tx, identity, after.id, new).await?;
        }
        after.parent_id = parent;
    }
    if let Some(rule) = &request.recurrence {
        if after.job.is_some() && rule.is_some() {
            return Err(TaskError::invalid(
                "invalid_recurrence",
                "an automated task repeats by its job's cron, not a recurrence",
            ));
        }
        after.recurrence = rule
            .as_deref()
            .map(crate::domain::recurrence::parse)
            .transpose()?;
    }
    Ok(())
}

/// Writes `after` (a changed task), its history entry and its events, inside `tx`.
pub async fn save(
    tx: &mut PgConnection,
    after: &Task,
    actor_id: Uuid,
    changes: Map<String, Value>,
) -> Result<Task, TaskError> {
    let task = store::tasks::update(tx, after).await?;
    let mut task = Task {
        job: after.job.clone(),
        ..task
    };
    if task.job.is_some() {
        attach(&mut *tx, std::slice::from_mut(&mut task)).await?;
    }
    store::tasks::record_history(tx, task.id, actor_id, &changes).await?;
    // Who follows a person's task hears of its moves (a job's are told by its kind of event).
    let followers = match changes.contains_key("status") && task.job.is_none() {
        true => Some(store::watchers::followers(tx, task.id).await?),
        false => None,
    };
    let events = events::of_change(&task, actor_id, &changes, followers)?;
    outbox::enqueue_all(tx, events).await?;
    Ok(task)
}

/// Replaces the task's pending reminder to match its current due date and status.
pub async fn reschedule(
    tx: &mut PgConnection,
    task: &Task,
    lead_secs: u64,
) -> Result<(), sqlx::Error> {
    store::tasks::drop_pending_reminder(tx, task.id).await?;
    if let Some(reminder) = reminder::first(task, lead_secs)? {
        outbox::enqueue_all(tx, vec![reminder]).await?;
    }
    Ok(())
}

/// Task `id` and what `identity` may do with it now (for another service, which may ask again
/// when long work ends); 404 if they may not see it. Judged also by what task-svc has heard of
/// the user since the assertion was made: a deactivated or deleted user may do nothing, an admin
/// demoted only what their new role allows. The read model only ever takes rights away: a row
/// that lags never raises the asserted role.
pub async fn access_of(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<(Task, Access), TaskError> {
    let mut conn = state.pool.acquire().await?;
    let mut now = identity.clone();
    match store::users::standing(&mut conn, identity.user_id).await? {
        Some((false, _)) => return Err(TaskError::NotFound("task")),
        Some((true, Some(role))) if identity.is_admin() => now.role = role,
        _ => {}
    }
    visible(&mut conn, &now, id, false).await
}

/// Who may see each of `ids` now, each list sorted and without repeats.
pub async fn audiences(
    state: &AppState,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Vec<Uuid>)>, TaskError> {
    let mut rows = store::tasks::audiences(&state.pool, ids).await?;
    for (_, users) in &mut rows {
        users.sort();
        users.dedup();
    }
    Ok(rows)
}
