//! Creating tasks: one (`POST /api/v1/tasks`) or many in one transaction (the bulk path),
//! with their jobs and their events, `task.created` first.

use std::collections::HashMap;

use shared::{config::Config, identity::Identity, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        job::ParsedJob,
        priority::Predictor,
        status::Status,
        task::{
            assignable, check_description, parse_tags, parse_title, CreateTask, Priority,
            PrioritySource, Task,
        },
    },
    error::TaskError,
    service::jobs::{self as job_service, Inserted},
    store, AppState,
};

/// Most tasks one bulk request creates.
pub const BULK_LIMIT: usize = 1000;

/// Creates one task. Returns it and `true`, or, when a live job has the same `unique_key`,
/// that job's task and `false`.
pub async fn create(
    state: &AppState,
    identity: &Identity,
    request: CreateTask,
) -> Result<(Task, bool), TaskError> {
    // Shares a transaction with the creations that arrive at the same moment.
    let arriving = state.group_commit.arriving();
    let prepared = prepare(state, identity, request, &mut None).await?;
    match state
        .group_commit
        .create(arriving, identity, prepared)
        .await?
    {
        Created::New(task) => Ok((*task, true)),
        Created::Existing(id) => {
            let mut conn = state.pool.acquire().await?;
            let existing =
                crate::service::tasks::visible_task(&mut conn, identity, &id.to_string()).await?;
            Ok((existing, false))
        }
    }
}

/// Creates 1 to [`BULK_LIMIT`] tasks in one transaction: all or none. Returns a result per
/// task, in order.
pub async fn create_bulk(
    state: &AppState,
    identity: &Identity,
    requests: Vec<CreateTask>,
) -> Result<Vec<Created>, TaskError> {
    if requests.is_empty() || requests.len() > BULK_LIMIT {
        return Err(TaskError::invalid(
            "invalid_bulk",
            format!("tasks must hold 1 to {BULK_LIMIT} tasks"),
        ));
    }
    let mut prepared = Vec::with_capacity(requests.len());
    let mut predictor = None;
    for (index, task) in requests.into_iter().enumerate() {
        let task = prepare(state, identity, task, &mut predictor)
            .await
            .map_err(|err| err.in_task(index))?;
        prepared.push(task);
    }
    let mut tx = state.pool.begin().await?;
    let prepared: Vec<&Prepared> = prepared.iter().collect();
    let (results, audience) = insert_many(&mut tx, &state.config, identity, &prepared).await?;
    shared::db::commit(&state.pool, tx).await?;
    state.cache.invalidate(&audience).await;
    Ok(results)
}

/// A creation request, validated, with its priority decided.
pub struct Prepared {
    request: CreateTask,
    title: String,
    tags: Vec<String>,
    recurrence: Option<String>,
    job: Option<ParsedJob>,
    priority: Priority,
    source: PrioritySource,
    /// The request's trace context, which its events carry.
    traceparent: Option<String>,
}

impl Prepared {
    /// The trace context of the request that made it.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Makes its job workflow step `run`; `held`: it waits for what it needs (written
    /// `pending`, not dispatched), else it is dispatched as any new job.
    pub fn as_step(&mut self, run: crate::domain::workflow::StepRun, held: bool) {
        if let Some(job) = &mut self.job {
            job.held = held;
            job.step = Some(run);
        }
    }
}

/// Validates a creation request (and declares a job's pool) before any transaction.
/// `predictor` is loaded on first need and kept for the next tasks of a bulk request.
pub async fn prepare(
    state: &AppState,
    identity: &Identity,
    request: CreateTask,
    predictor: &mut Option<Predictor>,
) -> Result<Prepared, TaskError> {
    let title = parse_title(&request.title)?;
    check_description(&request.description)?;
    let tags = parse_tags(&request.tags)?;
    let recurrence = request
        .recurrence
        .as_deref()
        .map(crate::domain::recurrence::parse)
        .transpose()?;
    if recurrence.is_some() && request.job.is_some() {
        return Err(TaskError::invalid(
            "invalid_recurrence",
            "an automated task repeats by its job's cron, not a recurrence",
        ));
    }
    let job = match &request.job {
        Some(spec) => {
            let job = crate::domain::job::parse(spec, &state.config.jobs)?;
            crate::domain::quota::check_job(&job, identity, &state.config)?;
            crate::service::quotas::check_pool(&state.pool, identity, &state.config, &job.pool)
                .await?;
            crate::service::commands::check(&state.pool, identity, &job).await?;
            if request.assignee_id.is_some() {
                return Err(TaskError::invalid(
                    "invalid_job",
                    "an automated task runs on a worker pool; it takes no assignee",
                ));
            }
            state.pools.ensure(&job.pool).await?;
            Some(job)
        }
        None => None,
    };
    let (priority, source) = match request.priority {
        Some(priority) => (priority, PrioritySource::User),
        None => {
            if predictor.is_none() {
                *predictor = Some(crate::service::priority::predictor(&state.pool).await?);
            }
            let predictor = predictor.as_ref().expect("loaded above");
            predictor.predict(&title, &request.description, request.due_at)
        }
    };
    Ok(Prepared {
        request,
        title,
        tags,
        recurrence,
        job,
        priority,
        source,
        traceparent: shared::trace::current(),
    })
}

/// A created task, or the live task with the same `unique_key`.
pub enum Created {
    New(Box<Task>),
    Existing(Uuid),
}

/// Inserts prepared tasks, their jobs and their events inside `tx`, a few statements for the
/// whole batch. Returns a result per task, in order, and everyone whose list changed. An error
/// names the task (`tasks[i]`) when there are several.
pub async fn insert_many(
    tx: &mut PgConnection,
    config: &Config,
    identity: &Identity,
    prepared: &[&Prepared],
) -> Result<(Vec<Created>, Vec<Uuid>), TaskError> {
    let jobs = prepared.iter().filter_map(|p| p.job.as_ref());
    crate::service::quotas::admit(tx, identity, config, jobs).await?;
    let name = |index: usize, err: TaskError| match prepared.len() {
        1 => err,
        _ => err.in_task(index),
    };
    let assignees: Vec<Uuid> = prepared
        .iter()
        .filter_map(|p| p.request.assignee_id)
        .collect();
    let active = store::tasks::users_active(tx, &assignees).await?;
    let channels: Vec<Uuid> = prepared
        .iter()
        .filter_map(|p| p.request.channel_id)
        .collect();
    let member_of = store::tasks::member_of(tx, &channels, identity.user_id).await?;
    let mut parents: Vec<Uuid> = prepared
        .iter()
        .filter_map(|p| p.request.parent_id)
        .collect();
    parents.sort();
    parents.dedup();
    for parent in parents {
        let index = prepared
            .iter()
            .position(|p| p.request.parent_id == Some(parent));
        crate::service::tasks::check_parent(tx, identity, parent)
            .await
            .map_err(|err| name(index.unwrap_or_default(), err))?;
    }
    for (index, p) in prepared.iter().enumerate() {
        if let Some(assignee) = p.request.assignee_id {
            assignable(active.get(&assignee).copied()).map_err(|err| name(index, err))?;
        }
        if let Some(channel) = p.request.channel_id {
            if !member_of.contains(&channel) {
                return Err(name(index, TaskError::NotFound("channel")));
            }
        }
    }
    let ids: Vec<Uuid> = prepared.iter().map(|_| Uuid::now_v7()).collect();
    let new = store::tasks::NewTasks {
        ids: ids.clone(),
        owner_id: identity.user_id,
        titles: prepared.iter().map(|p| p.title.clone()).collect(),
        descriptions: prepared
            .iter()
            .map(|p| p.request.description.clone())
            .collect(),
        priorities: prepared.iter().map(|p| p.priority).collect(),
        due_at: prepared.iter().map(|p| p.request.due_at).collect(),
        assignees: prepared.iter().map(|p| p.request.assignee_id).collect(),
        tags: prepared.iter().map(|p| p.tags.clone()).collect(),
        channels: prepared.iter().map(|p| p.request.channel_id).collect(),
        sources: prepared.iter().map(|p| p.source).collect(),
        statuses: prepared
            .iter()
            .map(|p| p.job.as_ref().map_or(Status::Todo, |j| j.initial_status()))
            .collect(),
        parents: prepared.iter().map(|p| p.request.parent_id).collect(),
        recurrences: prepared.iter().map(|p| p.recurrence.clone()).collect(),
    };
    let mut rows: HashMap<Uuid, Task> = store::tasks::insert_many(tx, &new)
        .await?
        .into_iter()
        .map(|task| (task.id, task))
        .collect();
    let tasks: Vec<Task> = ids
        .iter()
        .map(|id| rows.remove(id).expect("every task was inserted"))
        .collect();
    // Jobs, in one statement; a live unique_key gives the existing task instead.
    let with_jobs: Vec<(usize, &ParsedJob)> = prepared
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.job.as_ref()?)))
        .collect();
    let mut job_results: HashMap<usize, Inserted> = HashMap::new();
    if !with_jobs.is_empty() {
        let items: Vec<(&Task, &ParsedJob)> =
            with_jobs.iter().map(|(i, j)| (&tasks[*i], *j)).collect();
        let inserted = job_service::insert_many(tx, &items, None).await?;
        job_results = with_jobs.iter().map(|(i, _)| *i).zip(inserted).collect();
    }
    let lead = config.tasks.due_soon_lead_secs;
    let mut events = Vec::new();
    let mut results = Vec::with_capacity(prepared.len());
    let mut duplicates = Vec::new();
    for (index, mut task) in tasks.into_iter().enumerate() {
        let mut job_events = Vec::new();
        match job_results.remove(&index) {
            Some(Inserted::Duplicate(existing)) => {
                duplicates.push(task.id);
                results.push(Created::Existing(existing));
                continue;
            }
            Some(Inserted::Created(view, dispatch)) => {
                task.job = Some(*view);
                job_events = dispatch;
            }
            None => {}
        }
        let reminder = crate::domain::reminder::first(&task, lead)?;
        let mut of_task =
            crate::domain::events::of_creation(&task, identity.user_id, job_events, reminder)?;
        // The request's trace, also when a group's transaction runs outside the request.
        for pending in &mut of_task {
            pending.event.traceparent = prepared[index].traceparent.clone();
        }
        events.extend(of_task);
        results.push(Created::New(Box::new(task)));
    }
    if !duplicates.is_empty() {
        store::tasks::delete(tx, &duplicates).await?;
    }
    outbox::enqueue_all(tx, events).await?;
    let created: Vec<&Task> = results
        .iter()
        .filter_map(|r| match r {
            Created::New(task) => Some(&**task),
            Created::Existing(_) => None,
        })
        .collect();
    let audience = crate::store::tasks::audience_many(tx, &created).await?;
    Ok((results, audience))
}
