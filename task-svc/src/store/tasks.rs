//! The `tasks` table, its history, and the read model of users task-svc checks assignees in.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{
    listing::{search_words, ListQuery, Sort},
    status::Status,
    task::{HistoryEntry, Priority, PrioritySource, Task},
};

/// The columns of a [`Task`], in its order.
pub const COLUMNS: &str = "id, owner_id, title, description, status, priority, \
    priority_source, assignee_id, channel_id, due_at, tags, version, created_at, updated_at, \
    parent_id, recurrence";

/// Task `id` (locked for the transaction when `lock`).
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Task>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Whether user `id` is active (`None`: no such user).
pub async fn user_active(conn: &mut PgConnection, id: Uuid) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT active FROM users WHERE id = $1 AND NOT deleted")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Which of `ids` are known users, and whether each is active.
pub async fn users_active(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, bool>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(sqlx::query_as::<_, (Uuid, bool)>(
        "SELECT id, active FROM users WHERE id = ANY($1) AND NOT deleted",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect())
}

/// Which of `channels` `user` is a member of.
pub async fn member_of(
    conn: &mut PgConnection,
    channels: &[Uuid],
    user: Uuid,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if channels.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT channel_id FROM channel_members WHERE channel_id = ANY($1) AND user_id = $2",
    )
    .bind(channels)
    .bind(user)
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect())
}

/// Writes `after`'s fields, bumping its version. Returns the row as stored (without its job).
pub async fn update(conn: &mut PgConnection, after: &Task) -> Result<Task, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE tasks SET title = $2, description = $3, priority = $4, status = $5, due_at = $6,
                assignee_id = $7, tags = $8, priority_source = $9, channel_id = $10,
                parent_id = $11, recurrence = $12, version = version + 1, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(after.id)
    .bind(&after.title)
    .bind(&after.description)
    .bind(after.priority)
    .bind(after.status)
    .bind(after.due_at)
    .bind(after.assignee_id)
    .bind(&after.tags)
    .bind(after.priority_source)
    .bind(after.channel_id)
    .bind(after.parent_id)
    .bind(&after.recurrence)
    .fetch_one(conn)
    .await
}

/// Records a change of task `task_id` by `actor_id`.
pub async fn record_history(
    conn: &mut PgConnection,
    task_id: Uuid,
    actor_id: Uuid,
    changes: &Map<String, Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO task_history (id, task_id, actor_id, changes) VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(task_id)
    .bind(actor_id)
    .bind(Value::Object(changes.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Every recorded change of task `task_id`, oldest first.
pub async fn history(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT h.id, h.actor_id, coalesce(u.display_name, '') AS actor_name, h.at, h.changes
           FROM task_history h LEFT JOIN users u ON u.id = h.actor_id
          WHERE h.task_id = $1 ORDER BY h.at, h.id",
    )
    .bind(task_id)
    .fetch_all(conn)
    .await
}

/// Deletes the tasks `ids` (their jobs, runs and history go with them).
pub async fn delete(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tasks WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// New tasks, by column, for [`insert_many`].
pub struct NewTasks {
    pub ids: Vec<Uuid>,
    pub owner_id: Uuid,
    pub titles: Vec<String>,
    pub descriptions: Vec<String>,
    pub priorities: Vec<Priority>,
    pub due_at: Vec<Option<DateTime<Utc>>>,
    pub assignees: Vec<Option<Uuid>>,
    pub tags: Vec<Vec<String>>,
    pub channels: Vec<Option<Uuid>>,
    pub sources: Vec<PrioritySource>,
    pub statuses: Vec<Status>,
    pub parents: Vec<Option<Uuid>>,
    pub recurrences: Vec<Option<String>>,
}

/// Inserts `new` in one statement. Returns the rows as stored, in no particular order.
pub async fn insert_many(
    conn: &mut PgConnection,
    new: &NewTasks,
) -> Result<Vec<Task>, sqlx::Error> {
    let tags: Vec<Value> = new.tags.iter().map(|t| serde_json::json!(t)).collect();
    sqlx::query_as::<_, Task>(&format!(
        "INSERT INTO tasks (id, owner_id, title, description, priority, due_at, assignee_id, tags,
                            channel_id, priority_source, status, parent_id, recurrence)
         SELECT id, $2, title, description, priority, due_at, assignee_id,
                ARRAY(SELECT jsonb_array_elements_text(tags)), channel_id, source, status,
                parent_id, recurrence
           FROM unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                       $7::uuid[], $8::jsonb[], $9::uuid[], $10::text[], $11::text[],
                       $12::uuid[], $13::text[])
             AS t(id, title, description, priority, due_at, assignee_id, tags, channel_id,
                  source, status, parent_id, recurrence)
         RETURNING {COLUMNS}"
    ))
    .bind(&new.ids)
    .bind(new.owner_id)
    .bind(&new.titles)
    .bind(&new.descriptions)
    .bind(&new.priorities)
    .bind(&new.due_at)
    .bind(&new.assignees)
    .bind(&tags)
    .bind(&new.channels)
    .bind(&new.sources)
    .bind(&new.statuses)
    .bind(&new.parents)
    .bind(&new.recurrences)
    .fetch_all(conn)
    .await
}

/// What a search looks in (as the index `tasks_search` has it).
pub const SEARCH_TEXT: &str = "to_tsvector('simple', title || ' ' || description)";
/// A person's task's statuses: the tasks the search index holds (jobs are left out of it, so
/// that running them costs it nothing).
pub const PEOPLE_STATUSES: &str = "('todo', 'in_progress', 'done', 'cancelled')";

/// The page of tasks `user` may see (own, assigned, in their channels) that `query`'s filters
/// select, in `sort`'s order after `after` (a cursor's sort key and id): at most `limit` + 1
/// rows, so the caller knows whether another page follows. `q` is at most 200 characters.
pub async fn list(
    conn: &mut PgConnection,
    user: Uuid,
    query: &ListQuery,
    sort: Sort,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> Result<Vec<Task>, sqlx::Error> {
    let mut sql = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {COLUMNS} FROM tasks WHERE (owner_id = "
    ));
    sql.push_bind(user)
        .push(" OR assignee_id = ")
        .push_bind(user)
        .push(" OR channel_id IN (SELECT channel_id FROM channel_members WHERE user_id = ")
        .push_bind(user)
        .push("))");
    if let Some(status) = &query.status {
        sql.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(priority) = query.priority {
        sql.push(" AND priority = ").push_bind(priority);
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
        // `tags <> '{}'` lets the planner use the index of tasks that have tags.
        sql.push(" AND tags <> '{}' AND tags @> ARRAY[")
            .push_bind(tag.trim().to_lowercase())
            .push("]::text[]");
    }
    if let Some(before) = query.due_before {
        sql.push(" AND due_at < ").push_bind(before);
    }
    if let Some(after) = query.due_after {
        sql.push(" AND due_at > ").push_bind(after);
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        match search_words(q) {
            // The expression and the statuses are those of the index `tasks_search`.
            Some(words) => sql
                .push(format!(
                    " AND status IN {PEOPLE_STATUSES} AND {SEARCH_TEXT} @@ to_tsquery('simple', "
                ))
                .push_bind(words)
                .push(")"),
            None => {
                let pattern = format!("%{}%", shared::text::escape_like(q));
                sql.push(" AND (title ILIKE ")
                    .push_bind(pattern.clone())
                    .push(" OR description ILIKE ")
                    .push_bind(pattern)
                    .push(")")
            }
        };
    }
    let (key, key_type, descending) = sort_key(sort);
    if let Some((after, id)) = after {
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
    sql.build_query_as().fetch_all(conn).await
}

/// The SQL sort key, its type for the cursor value, and whether the order is descending.
pub fn sort_key(sort: Sort) -> (&'static str, &'static str, bool) {
    match sort {
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

/// Everyone whose list shows `task`: its owner, its assignee and its channel's members.
pub async fn audience(conn: &mut PgConnection, task: &Task) -> Result<Vec<Uuid>, sqlx::Error> {
    audience_many(conn, &[task]).await
}

/// Everyone whose list shows any of `tasks` (see [`audience`]), in one query for the channels.
pub async fn audience_many(
    conn: &mut PgConnection,
    tasks: &[&Task],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut users: Vec<Uuid> = tasks
        .iter()
        .flat_map(|t| std::iter::once(t.owner_id).chain(t.assignee_id))
        .collect();
    let channels: Vec<Uuid> = tasks.iter().filter_map(|t| t.channel_id).collect();
    if !channels.is_empty() {
        let members: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM channel_members WHERE channel_id = ANY($1)",
        )
        .bind(&channels)
        .fetch_all(conn)
        .await?;
        users.extend(members);
    }
    users.sort();
    users.dedup();
    Ok(users)
}

/// Who may see each of `ids` now (owner, assignee, channel members), sorted; unknown ids are
/// left out. Each id is looked up by key (`LIMIT 1`), never hashed over the whole table.
pub async fn audiences(
    pool: &sqlx::PgPool,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Vec<Uuid>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id,
                array_remove(ARRAY[t.owner_id, t.assignee_id]
                    || coalesce((SELECT array_agg(m.user_id) FROM channel_members m
                                  WHERE m.channel_id = t.channel_id), '{}'), NULL)
           FROM unnest($1::uuid[]) AS q(id)
          CROSS JOIN LATERAL (SELECT * FROM tasks WHERE tasks.id = q.id LIMIT 1) t",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Drops task `task_id`'s reminder that is not published yet, if any.
pub async fn drop_pending_reminder(
    conn: &mut PgConnection,
    task_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM outbox
          WHERE published_at IS NULL AND routing_key = 'task.due_soon'
            AND payload->>'subject' = $1",
    )
    .bind(task_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}
