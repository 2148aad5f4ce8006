//! The task resource: create, list, read, update (`PATCH` with `If-Match`), delete, history.
//!
//! Visibility: a task is visible to its owner, its assignee and admins; anyone else gets 404,
//! never 403, so ids do not leak. The owner and admins change every field; the assignee may
//! change the status only. Every change bumps `version` (the `ETag`), is recorded in
//! `task_history`, and announces itself through the outbox in the same transaction.

use std::collections::{HashMap, HashSet};

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use shared::{
    events::{
        CloudEvent, TaskAssigned, TaskCompleted, TaskCreated, TaskDeleted, TaskStatusChanged,
        TaskUpdated,
    },
    identity::Identity,
    outbox,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    cache, channels,
    domain::job as jobs,
    priority, reminders,
    service::jobs::{self as job_service, Inserted},
    status,
    store::jobs::attach,
    AppState, SERVICE,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tasks", get(list).post(create))
        .route("/api/v1/tasks/bulk", axum::routing::post(create_bulk))
        .route("/api/v1/tasks/{id}", get(read).patch(update).delete(delete))
        .route("/api/v1/tasks/{id}/history", get(history))
        .route("/api/v1/tasks/priority-model", get(model_report))
        .route(
            "/api/v1/tasks/priority-model/retrain",
            axum::routing::post(model_retrain),
        )
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Task {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    /// Where the priority came from: `user`, `model` or `heuristic`.
    pub priority_source: String,
    pub assignee_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    /// Increases with every change; the `ETag` is `"<version>"`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// An automated task's job; absent for a person's task.
    #[sqlx(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<jobs::JobView>,
}

pub(crate) const COLUMNS: &str = "id, owner_id, title, description, status, priority, \
    priority_source, assignee_id, channel_id, due_at, tags, version, created_at, updated_at";

impl Task {
    fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// What a caller may do with a task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    pub(crate) read: bool,
    /// Change every field and delete: its creator, its channel's owner, an admin.
    pub(crate) edit: bool,
}

async fn access(
    conn: &mut PgConnection,
    task: &Task,
    identity: &Identity,
) -> Result<Access, sqlx::Error> {
    let mine = identity.is_admin() || task.owner_id == identity.user_id;
    let (member, channel_owner) = match task.channel_id {
        Some(channel) => match channels::membership(conn, channel, identity.user_id).await? {
            Some((member, owner)) => (member, owner == identity.user_id),
            None => (false, false),
        },
        None => (false, false),
    };
    Ok(Access {
        read: mine || member || task.assignee_id == Some(identity.user_id),
        edit: mine || channel_owner,
    })
}

/// A task with its `ETag` header.
pub(crate) fn with_etag(status: StatusCode, task: Task) -> Response {
    let etag = HeaderValue::from_str(&task.etag()).ok();
    let mut response = (status, Json(task)).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

fn parse_title(raw: &str) -> Result<String, ApiError> {
    let title = raw.trim();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_title",
            "title must be 1 to 200 printable characters",
        ));
    }
    Ok(title.to_string())
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > 10_000 {
        return Err(ApiError::unprocessable(
            "invalid_description",
            "description must be at most 10000 characters",
        ));
    }
    Ok(())
}

/// At most 20 tags of 1 to 40 characters, trimmed, lowercased and deduplicated.
fn parse_tags(raw: &[String]) -> Result<Vec<String>, ApiError> {
    let mut tags: Vec<String> = raw.iter().map(|t| t.trim().to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    let bad = tags
        .iter()
        .any(|t| t.is_empty() || t.chars().count() > 40 || t.chars().any(char::is_control));
    if tags.len() > 20 || bad {
        return Err(ApiError::unprocessable(
            "invalid_tags",
            "at most 20 tags of 1 to 40 printable characters",
        ));
    }
    Ok(tags)
}

/// The assignee must be a known, active user (from task-svc's read model of users).
async fn check_assignee(conn: &mut PgConnection, assignee: Uuid) -> Result<(), ApiError> {
    let active: Option<bool> = sqlx::query_scalar("SELECT active FROM users WHERE id = $1")
        .bind(assignee)
        .fetch_optional(conn)
        .await?;
    assignable(active)
}

/// Whether a user whose `active` flag reads so (`None`: no such user) may be assigned.
fn assignable(active: Option<bool>) -> Result<(), ApiError> {
    match active {
        Some(true) => Ok(()),
        Some(false) => Err(ApiError::unprocessable(
            "inactive_assignee",
            "the assignee's account is deactivated",
        )),
        None => Err(ApiError::unprocessable(
            "unknown_assignee",
            "no user with this id",
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    pub priority: Option<Priority>,
    pub due_at: Option<DateTime<Utc>>,
    pub assignee_id: Option<Uuid>,
    /// Share the task with this channel's members (the caller must be one).
    pub channel_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Makes it an automated task that a worker pool runs.
    pub job: Option<jobs::JobSpec>,
}

#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), request_body = CreateTask,
    responses((status = 201, description = "Created; task.created (and task.assigned) are published", body = Task),
        (status = 200, description = "A live job with the same unique_key exists: that task", body = Task),
        (status = 503, description = "A job for a new pool while RabbitMQ is down", body = ProblemBody),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 404, description = "`channel_id` names a channel the caller is not a member of", body = ProblemBody),
        (status = 422, description = "Invalid title, description, tags or assignee; a job out of bounds (`invalid_job`, `cron_too_frequent`, `unknown_pool`)", body = ProblemBody),
        (status = 429, description = "A member's quota of live jobs or cron templates is used up (`quota_exceeded`)", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn create(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateTask>,
) -> Result<Response, ApiError> {
    let prepared = prepare(&state, &identity, request, &mut None).await?;
    let mut tx = state.pool.begin().await?;
    let (mut created, audience) = insert_many(&mut tx, &state, &identity, vec![prepared]).await?;
    shared::db::commit(&state.pool, tx).await?;
    state.cache.invalidate(&audience).await;
    match created.pop().expect("one result per task") {
        Created::New(task) => Ok(with_etag(StatusCode::CREATED, *task)),
        Created::Existing(id) => {
            let mut conn = state.pool.acquire().await?;
            let (existing, _) = visible(&mut conn, &identity, &id.to_string(), false).await?;
            Ok(with_etag(StatusCode::OK, existing))
        }
    }
}

/// Tasks to create at once: all or none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTasks {
    /// 1 to 1000 tasks.
    #[schema(min_items = 1, max_items = 1000)]
    pub tasks: Vec<CreateTask>,
}

/// What a bulk creation did, in the order given.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedTasks {
    /// The ids of the tasks, new or (for a live `unique_key`) existing.
    pub ids: Vec<Uuid>,
    /// How many are new.
    pub created: usize,
}

/// Most tasks one bulk request creates.
pub const BULK_LIMIT: usize = 1000;

#[utoipa::path(post, path = "/api/v1/tasks/bulk", tag = "tasks", security(("bearer" = [])), request_body = CreateTasks,
    responses((status = 201, description = "All created in one transaction (the job engine's bulk path); the events are those of single creations", body = CreatedTasks),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 404, description = "A task's `channel_id` names a channel the caller is not a member of (the detail names which); nothing was created", body = ProblemBody),
        (status = 422, description = "A task is invalid (the detail names which); nothing was created", body = ProblemBody),
        (status = 429, description = "The tasks' jobs would pass a member's quota (`quota_exceeded`); nothing was created", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id))]
pub async fn create_bulk(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<CreateTasks>,
) -> Result<(StatusCode, Json<CreatedTasks>), ApiError> {
    if request.tasks.is_empty() || request.tasks.len() > BULK_LIMIT {
        return Err(ApiError::unprocessable(
            "invalid_bulk",
            format!("tasks must hold 1 to {BULK_LIMIT} tasks"),
        ));
    }
    let mut prepared = Vec::with_capacity(request.tasks.len());
    let mut predictor = None;
    for (index, task) in request.tasks.into_iter().enumerate() {
        let task = prepare(&state, &identity, task, &mut predictor)
            .await
            .map_err(|err| at_index(index, err))?;
        prepared.push(task);
    }
    let mut tx = state.pool.begin().await?;
    let (results, audience) = insert_many(&mut tx, &state, &identity, prepared).await?;
    shared::db::commit(&state.pool, tx).await?;
    state.cache.invalidate(&audience).await;
    let created = results
        .iter()
        .filter(|r| matches!(r, Created::New(_)))
        .count();
    let ids = results
        .into_iter()
        .map(|r| match r {
            Created::New(task) => task.id,
            Created::Existing(id) => id,
        })
        .collect();
    Ok((StatusCode::CREATED, Json(CreatedTasks { ids, created })))
}

/// An error about the `index`th task of a bulk request.
fn at_index(index: usize, mut err: ApiError) -> ApiError {
    err.detail = Some(format!(
        "tasks[{index}]: {}",
        err.detail.unwrap_or_default()
    ));
    err
}

/// A creation request, validated, with its priority decided.
pub(crate) struct Prepared {
    request: CreateTask,
    title: String,
    tags: Vec<String>,
    job: Option<jobs::ParsedJob>,
    priority: String,
    source: &'static str,
}

/// Validates a creation request (and declares a job's pool) before any transaction.
/// `predictor` is loaded on first need and kept for the next tasks of a bulk request.
async fn prepare(
    state: &AppState,
    identity: &Identity,
    request: CreateTask,
    predictor: &mut Option<priority::Predictor>,
) -> Result<Prepared, ApiError> {
    let title = parse_title(&request.title)?;
    check_description(&request.description)?;
    let tags = parse_tags(&request.tags)?;
    let job = match &request.job {
        Some(spec) => {
            let job = jobs::parse(spec, &state.config.jobs)?;
            crate::quotas::check_job(&job, identity, &state.config)?;
            crate::quotas::check_pool(&state.pool, identity, &state.config, &job.pool).await?;
            if request.assignee_id.is_some() {
                return Err(ApiError::unprocessable(
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
        Some(priority) => (priority.as_str().to_string(), "user"),
        None => {
            if predictor.is_none() {
                *predictor = Some(priority::Predictor::load(&state.pool).await?);
            }
            let predictor = predictor.as_ref().expect("loaded above");
            predictor.predict(&title, &request.description, request.due_at)
        }
    };
    Ok(Prepared {
        request,
        title,
        tags,
        job,
        priority,
        source,
    })
}

/// A created task, or the live task with the same `unique_key`.
pub(crate) enum Created {
    New(Box<Task>),
    Existing(Uuid),
}

/// Inserts prepared tasks, their jobs and their events inside `tx`, a few statements for the
/// whole batch. Returns a result per task, in order, and everyone whose list changed. An error
/// names the task (`tasks[i]`) when there are several.
async fn insert_many(
    tx: &mut PgConnection,
    state: &AppState,
    identity: &Identity,
    prepared: Vec<Prepared>,
) -> Result<(Vec<Created>, Vec<Uuid>), ApiError> {
    let jobs = prepared.iter().filter_map(|p| p.job.as_ref());
    crate::quotas::admit(tx, identity, &state.config, jobs).await?;
    let name = |index: usize, err: ApiError| match prepared.len() {
        1 => err,
        _ => at_index(index, err),
    };
    let assignees: Vec<Uuid> = prepared
        .iter()
        .filter_map(|p| p.request.assignee_id)
        .collect();
    let active: HashMap<Uuid, bool> = match assignees.is_empty() {
        true => HashMap::new(),
        false => {
            sqlx::query_as::<_, (Uuid, bool)>("SELECT id, active FROM users WHERE id = ANY($1)")
                .bind(&assignees)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
        }
    };
    let channels: Vec<Uuid> = prepared
        .iter()
        .filter_map(|p| p.request.channel_id)
        .collect();
    let member_of: HashSet<Uuid> = match channels.is_empty() {
        true => HashSet::new(),
        false => sqlx::query_scalar(
            "SELECT channel_id FROM channel_members WHERE channel_id = ANY($1) AND user_id = $2",
        )
        .bind(&channels)
        .bind(identity.user_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect(),
    };
    for (index, p) in prepared.iter().enumerate() {
        if let Some(assignee) = p.request.assignee_id {
            assignable(active.get(&assignee).copied()).map_err(|err| name(index, err))?;
        }
        if let Some(channel) = p.request.channel_id {
            if !member_of.contains(&channel) {
                return Err(name(index, ApiError::not_found("channel")));
            }
        }
    }
    let ids: Vec<Uuid> = prepared.iter().map(|_| Uuid::now_v7()).collect();
    let tags: Vec<serde_json::Value> = prepared.iter().map(|p| serde_json::json!(p.tags)).collect();
    let mut rows: HashMap<Uuid, Task> = sqlx::query_as::<_, Task>(&format!(
        "INSERT INTO tasks (id, owner_id, title, description, priority, due_at, assignee_id, tags,
                            channel_id, priority_source, status)
         SELECT id, $2, title, description, priority, due_at, assignee_id,
                ARRAY(SELECT jsonb_array_elements_text(tags)), channel_id, source, status
           FROM unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                       $7::uuid[], $8::jsonb[], $9::uuid[], $10::text[], $11::text[])
             AS t(id, title, description, priority, due_at, assignee_id, tags, channel_id,
                  source, status)
         RETURNING {COLUMNS}"
    ))
    .bind(&ids)
    .bind(identity.user_id)
    .bind(prepared.iter().map(|p| p.title.clone()).collect::<Vec<_>>())
    .bind(
        prepared
            .iter()
            .map(|p| p.request.description.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.priority.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.request.due_at)
            .collect::<Vec<_>>(),
    )
    .bind(
        prepared
            .iter()
            .map(|p| p.request.assignee_id)
            .collect::<Vec<_>>(),
    )
    .bind(&tags)
    .bind(
        prepared
            .iter()
            .map(|p| p.request.channel_id)
            .collect::<Vec<_>>(),
    )
    .bind(prepared.iter().map(|p| p.source).collect::<Vec<_>>())
    .bind(
        prepared
            .iter()
            .map(|p| p.job.as_ref().map_or("todo", |j| j.initial_status()))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|task| (task.id, task))
    .collect();
    let tasks: Vec<Task> = ids
        .iter()
        .map(|id| rows.remove(id).expect("every task was inserted"))
        .collect();
    // Jobs, in one statement; a live unique_key gives the existing task instead.
    let with_jobs: Vec<(usize, &jobs::ParsedJob)> = prepared
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.job.as_ref()?)))
        .collect();
    let mut job_results: HashMap<usize, Inserted> = HashMap::new();
    if !with_jobs.is_empty() {
        let items: Vec<(&Task, &jobs::ParsedJob)> =
            with_jobs.iter().map(|(i, j)| (&tasks[*i], *j)).collect();
        let inserted = job_service::insert_many(tx, &items, None).await?;
        job_results = with_jobs.iter().map(|(i, _)| *i).zip(inserted).collect();
    }
    let lead = state.config.tasks.due_soon_lead_secs;
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
        let created = TaskCreated {
            task_id: task.id,
            owner_id: task.owner_id,
            title: task.title.clone(),
            status: task.status.clone(),
            priority: task.priority.clone(),
            assignee_id: task.assignee_id,
            channel_id: task.channel_id,
            due_at: task.due_at,
            job_kind: task.job.as_ref().map(|j| j.kind.clone()),
        };
        // task.created first: consumers see a task before what happens to it.
        events.push(outbox::Pending::new(
            CloudEvent::new(SERVICE, created),
            outbox::Route::default(),
        )?);
        events.extend(job_events);
        if let Some(assignee_id) = task.assignee_id {
            let assigned = TaskAssigned {
                task_id: task.id,
                owner_id: task.owner_id,
                actor_id: identity.user_id,
                assignee_id: Some(assignee_id),
                previous_assignee_id: None,
                title: task.title.clone(),
                pool: None,
            };
            events.push(outbox::Pending::new(
                CloudEvent::new(SERVICE, assigned),
                outbox::Route::default(),
            )?);
        }
        events.extend(reminders::first(&task, lead)?);
        results.push(Created::New(Box::new(task)));
    }
    if !duplicates.is_empty() {
        sqlx::query("DELETE FROM tasks WHERE id = ANY($1)")
            .bind(&duplicates)
            .execute(&mut *tx)
            .await?;
    }
    outbox::enqueue_all(tx, events).await?;
    let created: Vec<&Task> = results
        .iter()
        .filter_map(|r| match r {
            Created::New(task) => Some(&**task),
            Created::Existing(_) => None,
        })
        .collect();
    let audience = cache::audience_many(tx, &created).await?;
    Ok((results, audience))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskList {
    pub items: Vec<Task>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Filters of `GET /api/v1/tasks`; all optional, combined with AND.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
    pub priority: Option<Priority>,
    pub assignee_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    /// Tasks carrying this tag.
    pub tag: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
    /// Text in the title or description (case-insensitive).
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 50).
    pub limit: Option<u32>,
    /// `-created_at` (newest first, the default), `created_at`, `due_at` (soonest first, none
    /// last) or `-priority` (most urgent first).
    pub sort: Option<String>,
    /// From the previous page's `next_cursor` (with the same `sort`).
    pub cursor: Option<String>,
}

/// The orders a list can come in; each is a keyset (sort key, id), so pages stay exact while
/// tasks are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// Newest first (the default).
    CreatedDesc,
    CreatedAsc,
    /// Soonest due first; tasks without a due date last.
    DueAsc,
    /// Most urgent first, then newest.
    PriorityDesc,
}

impl Sort {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw.unwrap_or("-created_at") {
            "-created_at" => Ok(Sort::CreatedDesc),
            "created_at" => Ok(Sort::CreatedAsc),
            "due_at" => Ok(Sort::DueAsc),
            "-priority" => Ok(Sort::PriorityDesc),
            _ => Err(ApiError::bad_request(
                "invalid_sort",
                "sort is one of -created_at (default), created_at, due_at, -priority",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sort::CreatedDesc => "-created_at",
            Sort::CreatedAsc => "created_at",
            Sort::DueAsc => "due_at",
            Sort::PriorityDesc => "-priority",
        }
    }

    /// The SQL sort key, its type for the cursor value, and whether the order is descending.
    fn key(self) -> (&'static str, &'static str, bool) {
        match self {
            Sort::CreatedDesc => ("created_at", "timestamptz", true),
            Sort::CreatedAsc => ("created_at", "timestamptz", false),
            Sort::DueAsc => ("COALESCE(due_at, 'infinity')", "timestamptz", false),
            Sort::PriorityDesc => (
                "(CASE priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 \
                  WHEN 'normal' THEN 1 ELSE 0 END)",
                "integer",
                true,
            ),
        }
    }

    /// The sort key of `task` as the text the SQL key casts from.
    fn key_of(self, task: &Task) -> String {
        match self {
            Sort::CreatedDesc | Sort::CreatedAsc => task.created_at.to_rfc3339(),
            Sort::DueAsc => task
                .due_at
                .map_or_else(|| "infinity".to_string(), |d| d.to_rfc3339()),
            Sort::PriorityDesc => match task.priority.as_str() {
                "urgent" => "3",
                "high" => "2",
                "normal" => "1",
                _ => "0",
            }
            .to_string(),
        }
    }
}

/// Keyset position: the sort, and the sort key and id of the previous page's last task.
fn decode_cursor(cursor: &str, sort: Sort) -> Result<(String, Uuid), ApiError> {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let invalid = || ApiError::bad_request("invalid_cursor", "cursor is not one this API gave");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '|');
    let (name, key, id) = (parts.next(), parts.next(), parts.next());
    let (Some(name), Some(key), Some(id)) = (name, key, id) else {
        return Err(invalid());
    };
    if name != sort.name() {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "this cursor belongs to another sort order",
        ));
    }
    // The key must parse as its type, so the SQL cast cannot fail.
    let valid = match sort {
        Sort::PriorityDesc => key.parse::<i32>().is_ok(),
        Sort::DueAsc if key == "infinity" => true,
        _ => DateTime::parse_from_rfc3339(key).is_ok(),
    };
    if !valid {
        return Err(invalid());
    }
    Ok((key.to_string(), Uuid::parse_str(id).map_err(|_| invalid())?))
}

fn encode_cursor(task: &Task, sort: Sort) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", sort.name(), sort.key_of(task), task.id))
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, description = "Tasks the caller may see (own, assigned, in their channels), newest first", body = TaskList),
        (status = 400, description = "Unknown filter or bad cursor", body = ProblemBody),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let axum::extract::Query(query) = query?;
    // The plain first page ("my tasks") is what clients ask for most: serve it from the cache.
    let plain = query.status.is_none()
        && query.priority.is_none()
        && query.assignee_id.is_none()
        && query.owner_id.is_none()
        && query.channel_id.is_none()
        && query.tag.is_none()
        && query.due_before.is_none()
        && query.due_after.is_none()
        && query.q.is_none()
        && query.limit.is_none()
        && query.sort.is_none()
        && query.cursor.is_none();
    let cached = if plain {
        state.cache.get(identity.user_id).await
    } else {
        None
    };
    if let Some((_, Some(page))) = &cached {
        if let Ok(list) = serde_json::from_str::<TaskList>(page) {
            metrics::counter!("taskmesh_task_list_cache_total", "outcome" => "hit").increment(1);
            return Ok(Json(list));
        }
    }
    let list = query_list(&state, &identity, query).await?;
    if let Some((generation, None)) = cached {
        metrics::counter!("taskmesh_task_list_cache_total", "outcome" => "miss").increment(1);
        if let Ok(page) = serde_json::to_string(&list) {
            state.cache.put(identity.user_id, generation, &page).await;
        }
    }
    Ok(Json(list))
}

async fn query_list(
    state: &AppState,
    identity: &Identity,
    query: ListQuery,
) -> Result<TaskList, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 100) as i64;
    let sort = Sort::parse(query.sort.as_deref())?;
    let mut sql = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {COLUMNS} FROM tasks WHERE (owner_id = "
    ));
    sql.push_bind(identity.user_id)
        .push(" OR assignee_id = ")
        .push_bind(identity.user_id)
        .push(" OR channel_id IN (SELECT channel_id FROM channel_members WHERE user_id = ")
        .push_bind(identity.user_id)
        .push("))");
    if let Some(status) = &query.status {
        sql.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(priority) = query.priority {
        sql.push(" AND priority = ").push_bind(priority.as_str());
    }
    if let Some(assignee) = query.assignee_id {
        sql.push(" AND assignee_id = ").push_bind(assignee);
    }
    if let Some(owner) = query.owner_id {
        sql.push(" AND owner_id = ").push_bind(owner);
    }
    if let Some(channel) = query.channel_id {
        sql.push(" AND channel_id = ").push_bind(channel);
    }
    if let Some(tag) = &query.tag {
        sql.push(" AND ")
            .push_bind(tag.trim().to_lowercase())
            .push(" = ANY(tags)");
    }
    if let Some(before) = query.due_before {
        sql.push(" AND due_at < ").push_bind(before);
    }
    if let Some(after) = query.due_after {
        sql.push(" AND due_at > ").push_bind(after);
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 200 {
            return Err(ApiError::bad_request(
                "invalid_query",
                "q is limited to 200 characters",
            ));
        }
        let pattern = format!(
            "%{}%",
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        sql.push(" AND (title ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR description ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    let (key, key_type, descending) = sort.key();
    if let Some(cursor) = &query.cursor {
        let (after, id) = decode_cursor(cursor, sort)?;
        sql.push(format!(
            " AND ({key}, id) {} (",
            if descending { "<" } else { ">" }
        ))
        .push_bind(after)
        .push(format!("::{key_type}, "))
        .push_bind(id)
        .push(")");
    }
    let direction = if descending { "DESC" } else { "ASC" };
    sql.push(format!(
        " ORDER BY {key} {direction}, id {direction} LIMIT "
    ))
    .push_bind(limit + 1);
    let mut conn = state.pool.acquire().await?;
    let mut items: Vec<Task> = sql.build_query_as().fetch_all(&mut *conn).await?;
    attach(&mut conn, &mut items).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|t| encode_cursor(t, sort))
    } else {
        None
    };
    Ok(TaskList { items, next_cursor })
}

/// The task if `identity` may see it, and what they may do; 404 otherwise (also for a
/// malformed id).
pub(crate) async fn visible(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
    lock: bool,
) -> Result<(Task, Access), ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("task"))?;
    let lock = if lock { " FOR UPDATE" } else { "" };
    let task: Option<Task> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1{lock}"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let mut task = task.ok_or_else(|| ApiError::not_found("task"))?;
    let access = access(conn, &task, identity).await?;
    if !access.read {
        return Err(ApiError::not_found("task"));
    }
    attach(conn, std::slice::from_mut(&mut task)).await?;
    Ok((task, access))
}

/// The task if `identity` may see it; 404 otherwise.
pub(crate) async fn visible_task(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
) -> Result<Task, ApiError> {
    Ok(visible(conn, identity, id, false).await?.0)
}

/// The task, locked, if `identity` may see it, and whether they may edit it; 404 otherwise.
pub(crate) async fn visible_for_edit(
    conn: &mut PgConnection,
    identity: &Identity,
    id: &str,
) -> Result<(Task, bool), ApiError> {
    let (task, access) = visible(conn, identity, id, true).await?;
    Ok((task, access.edit))
}

/// The `changes` entry of a status move.
pub(crate) fn status_change(before: &Task, after: &Task) -> Map<String, Value> {
    let mut changes = Map::new();
    changes.insert(
        "status".into(),
        json!({ "from": before.status, "to": after.status }),
    );
    changes
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task, with its ETag", body = Task),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let (task, _) = visible(&mut conn, &identity, &id, false).await?;
    Ok(with_etag(StatusCode::OK, task))
}

/// `If-Match` must name the current version when given; 412 otherwise.
fn check_if_match(headers: &HeaderMap, task: &Task) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let value = value.to_str().unwrap_or("");
    let current = task.etag();
    let matches = value
        .split(',')
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == "*" || v == current);
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "stale_version",
            format!("the task changed meanwhile; its current ETag is {current}"),
        ))
    }
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn explicit<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A partial update; absent fields stay as they are, `null` clears `due_at` and `assignee_id`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTask {
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
}

impl UpdateTask {
    fn only_status(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.priority.is_none()
            && self.due_at.is_none()
            && self.assignee_id.is_none()
            && self.tags.is_none()
    }
}

#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])), request_body = UpdateTask,
    params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before; a stale one is 412")),
    responses((status = 200, description = "Updated, with the new ETag", body = Task),
        (status = 403, description = "Visible but not editable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 409, description = "Forbidden status transition; the detail names the allowed ones", body = ProblemBody),
        (status = 412, description = "Stale If-Match: nothing changed", body = ProblemBody),
        (status = 422, description = "Invalid field", body = ProblemBody)))]
#[tracing::instrument(skip_all, fields(user_id = %identity.user_id, task_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<UpdateTask>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (before, access) = visible(&mut tx, &identity, &id, true).await?;
    let assignee_may = before.assignee_id == Some(identity.user_id) && request.only_status();
    if !access.edit && !assignee_may {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the task's creator, its channel's owner or an admin can change this (its assignee can change the status)",
        ));
    }
    check_if_match(&headers, &before)?;
    let mut after = before.clone();
    if let Some(title) = &request.title {
        after.title = parse_title(title)?;
    }
    if let Some(description) = &request.description {
        check_description(description)?;
        after.description = description.clone();
    }
    if let Some(priority) = request.priority {
        after.priority = priority.as_str().to_string();
        after.priority_source = "user".into();
    }
    if let Some(to) = &request.status {
        if before.job.is_some() {
            if *to != before.status {
                return Err(ApiError::conflict(
                    "job_status",
                    "an automated task's status follows its job; cancel it with POST /api/v1/tasks/{id}/cancel",
                ));
            }
        } else {
            status::check(&before.status, to)?;
        }
        after.status = to.clone();
    }
    if before.job.is_some() && matches!(request.assignee_id, Some(Some(_))) {
        return Err(ApiError::unprocessable(
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
    let changes = diff(&before, &after);
    if changes.is_empty() {
        return Ok(with_etag(StatusCode::OK, before));
    }
    let reschedule = changes.contains_key("due_at") || changes.contains_key("status");
    let task = save(&mut tx, &after, identity.user_id, changes).await?;
    if reschedule {
        let lead = state.config.tasks.due_soon_lead_secs;
        reminders::reschedule(&mut tx, &task, lead).await?;
    }
    // The previous assignee's list changes too.
    let mut audience = cache::audience(&mut tx, &task).await?;
    audience.extend(before.assignee_id);
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    Ok(with_etag(StatusCode::OK, task))
}

/// Field → `{from, to}` for every field that differs.
fn diff(before: &Task, after: &Task) -> Map<String, Value> {
    let (b, a) = (json!(before), json!(after));
    let mut changes = Map::new();
    for field in [
        "title",
        "description",
        "priority",
        "status",
        "due_at",
        "assignee_id",
        "tags",
    ] {
        if b[field] != a[field] {
            changes.insert(field.into(), json!({ "from": b[field], "to": a[field] }));
        }
    }
    changes
}

/// Writes `after` (a changed task), its history entry and its events, inside `tx`.
pub(crate) async fn save(
    tx: &mut PgConnection,
    after: &Task,
    actor_id: Uuid,
    changes: Map<String, Value>,
) -> Result<Task, ApiError> {
    let task: Task = sqlx::query_as(&format!(
        "UPDATE tasks SET title = $2, description = $3, priority = $4, status = $5, due_at = $6,
                assignee_id = $7, tags = $8, priority_source = $9, version = version + 1,
                updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(after.id)
    .bind(&after.title)
    .bind(&after.description)
    .bind(&after.priority)
    .bind(&after.status)
    .bind(after.due_at)
    .bind(after.assignee_id)
    .bind(&after.tags)
    .bind(&after.priority_source)
    .fetch_one(&mut *tx)
    .await?;
    let mut task = Task {
        job: after.job.clone(),
        ..task
    };
    if task.job.is_some() {
        attach(&mut *tx, std::slice::from_mut(&mut task)).await?;
    }
    sqlx::query(
        "INSERT INTO task_history (id, task_id, actor_id, changes) VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(task.id)
    .bind(actor_id)
    .bind(Value::Object(changes.clone()))
    .execute(&mut *tx)
    .await?;
    let updated = TaskUpdated {
        task_id: task.id,
        owner_id: task.owner_id,
        actor_id,
        title: task.title.clone(),
        changed: changes.keys().cloned().collect(),
        version: task.version,
    };
    outbox::enqueue(tx, CloudEvent::new(SERVICE, updated)).await?;
    if let Some(change) = changes.get("status") {
        let from = change["from"].as_str().unwrap_or_default().to_string();
        let moved = TaskStatusChanged {
            task_id: task.id,
            owner_id: task.owner_id,
            actor_id,
            title: task.title.clone(),
            from,
            to: task.status.clone(),
            assignee_id: task.assignee_id,
        };
        outbox::enqueue(tx, CloudEvent::new(SERVICE, moved)).await?;
        if task.status == "done" {
            let completed = TaskCompleted {
                task_id: task.id,
                owner_id: task.owner_id,
                actor_id,
                assignee_id: task.assignee_id,
                title: task.title.clone(),
                job_kind: None,
            };
            outbox::enqueue(tx, CloudEvent::new(SERVICE, completed)).await?;
        }
    }
    if let (Some(change), Some(assignee_id)) = (changes.get("assignee_id"), task.assignee_id) {
        let previous = change["from"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok());
        let assigned = TaskAssigned {
            task_id: task.id,
            owner_id: task.owner_id,
            actor_id,
            assignee_id: Some(assignee_id),
            previous_assignee_id: previous,
            title: task.title.clone(),
            pool: None,
        };
        outbox::enqueue(tx, CloudEvent::new(SERVICE, assigned)).await?;
    }
    Ok(task)
}

#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before; a stale one is 412")),
    responses((status = 204, description = "Deleted; task.deleted is published"),
        (status = 403, description = "Visible but not deletable by the caller", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody),
        (status = 412, description = "Stale If-Match: nothing deleted", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (task, access) = visible(&mut tx, &identity, &id, true).await?;
    if !access.edit {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the task's creator, its channel's owner or an admin can delete it",
        ));
    }
    check_if_match(&headers, &task)?;
    sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(task.id)
        .execute(&mut *tx)
        .await?;
    let gone = Task {
        due_at: None,
        ..task.clone()
    };
    reminders::reschedule(&mut tx, &gone, 0).await?;
    let audience = cache::audience(&mut tx, &task).await?;
    let deleted = TaskDeleted {
        task_id: task.id,
        owner_id: task.owner_id,
        actor_id: identity.user_id,
        audience: audience.clone(),
    };
    outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, deleted)).await?;
    tx.commit().await?;
    state.cache.invalidate(&audience).await;
    Ok(StatusCode::NO_CONTENT)
}

/// One recorded change.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub id: Uuid,
    /// Who changed it; the nil UUID for the system.
    pub actor_id: Uuid,
    pub at: DateTime<Utc>,
    /// Field → `{from, to}`.
    #[schema(value_type = Object)]
    pub changes: Value,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct History {
    pub items: Vec<HistoryEntry>,
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/history", tag = "tasks", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "Every change, oldest first", body = History),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn history(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<History>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let (task, _) = visible(&mut conn, &identity, &id, false).await?;
    let items = sqlx::query_as(
        "SELECT id, actor_id, at, changes FROM task_history WHERE task_id = $1 ORDER BY at, id",
    )
    .bind(task.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(History { items }))
}

#[utoipa::path(get, path = "/api/v1/tasks/priority-model", tag = "tasks", security(("bearer" = [])),
    responses((status = 200, description = "The newest priority model's held-out accuracy next to the majority-class baseline", body = priority::Report),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No model trained yet (the heuristic decides)", body = ProblemBody)))]
pub async fn model_report(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<priority::Report>, ApiError> {
    identity.require_admin()?;
    priority::latest(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("priority model"))
}

#[utoipa::path(post, path = "/api/v1/tasks/priority-model/retrain", tag = "tasks", security(("bearer" = [])),
    responses((status = 200, description = "Trained now on every user-labelled task", body = priority::Report),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 409, description = "Too few labelled tasks (or a single priority) to train on", body = ProblemBody)))]
pub async fn model_retrain(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<priority::Report>, ApiError> {
    identity.require_admin()?;
    priority::retrain(&state.pool).await?.map(Json).ok_or_else(|| {
        ApiError::conflict(
            "not_enough_data",
            format!(
                "training needs at least {} tasks whose priority a person set, with two priorities or more",
                priority::MIN_SAMPLES
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised_and_bounded() {
        let tags = parse_tags(&["  Ops ".into(), "ops".into(), "DB".into()]).unwrap();
        assert_eq!(tags, ["db", "ops"]);
        assert!(parse_tags(&["".into()]).is_err());
        assert!(parse_tags(&(0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()).is_err());
    }
}
