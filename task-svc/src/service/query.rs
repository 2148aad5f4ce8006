//! Task lists: the tasks a person may see, filtered and ordered, a page at a time; the plain
//! first page ("my tasks") is served from the cache.

use shared::{
    identity::Identity,
    paging::{next_after, Limit},
};

use crate::{
    domain::listing::{decode_cursor, encode_cursor, ListQuery, Sort, TaskList},
    error::TaskError,
    store::{self, jobs::attach},
    AppState,
};

/// A page of `GET /api/v1/tasks`: 50 tasks unless asked, at most 100 (more is clamped).
const TASK_PAGE: Limit = Limit::new(50, 100);

/// The page `query` asks for, of the tasks `identity` may see.
pub async fn list(
    state: &AppState,
    identity: &Identity,
    query: ListQuery,
) -> Result<TaskList, TaskError> {
    // The plain first page ("my tasks") is what clients ask for most: serve it from the cache.
    let cached = match query.is_plain() {
        true => state.cache.get(identity.user_id).await,
        false => None,
    };
    if let Some((_, Some(page))) = &cached {
        if let Ok(list) = serde_json::from_str::<TaskList>(page) {
            metrics::counter!("taskmesh_task_list_cache_total", "outcome" => "hit").increment(1);
            return Ok(list);
        }
    }
    let list = query_list(state, identity, query).await?;
    if let Some((generation, None)) = cached {
        metrics::counter!("taskmesh_task_list_cache_total", "outcome" => "miss").increment(1);
        if let Ok(page) = serde_json::to_string(&list) {
            state.cache.put(identity.user_id, generation, &page).await;
        }
    }
    Ok(list)
}

async fn query_list(
    state: &AppState,
    identity: &Identity,
    query: ListQuery,
) -> Result<TaskList, TaskError> {
    let limit = TASK_PAGE.clamp(query.limit);
    let sort = Sort::parse(query.sort.as_deref())?;
    if let Some(q) = query.q.as_deref() {
        if q.trim().chars().count() > 200 {
            return Err(TaskError::malformed(
                "invalid_query",
                "q is limited to 200 characters",
            ));
        }
        // PostgreSQL refuses NUL in text; a search made of words never sends it there, so it
        // is refused here, as every other text is.
        if q.contains('\0') {
            return Err(TaskError::malformed(
                "invalid_text",
                "text must not contain NUL characters",
            ));
        }
    }
    let after = match &query.cursor {
        Some(cursor) => Some(decode_cursor(cursor, sort)?),
        None => None,
    };
    let mut conn = state.pool.acquire().await?;
    let mut items =
        store::tasks::list(&mut conn, identity.user_id, &query, sort, after, limit).await?;
    attach(&mut conn, &mut items).await?;
    let next_cursor = next_after(&mut items, limit, |t| encode_cursor(t, sort));
    Ok(TaskList { items, next_cursor })
}
