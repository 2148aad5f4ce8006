//! Reading workflows: one with its steps, or a page of the caller's.

use serde::Deserialize;
use shared::identity::Identity;
use uuid::Uuid;

use crate::{
    domain::{workflow::WorkflowStatus, workflow_view::WorkflowView},
    error::TaskError,
    store::{self, workflows::WorkflowRow},
    AppState,
};

/// Workflow `id` if `identity` owns it (or is an admin), locked when `lock`; 404 otherwise.
pub async fn owned(
    conn: &mut sqlx::PgConnection,
    identity: &Identity,
    id: &str,
    lock: bool,
) -> Result<WorkflowRow, TaskError> {
    let id = Uuid::parse_str(id).map_err(|_| TaskError::NotFound("workflow"))?;
    match store::workflows::find(conn, id, lock).await? {
        Some(row) if row.owner_id == identity.user_id || identity.is_admin() => Ok(row),
        _ => Err(TaskError::NotFound("workflow")),
    }
}

/// Workflow `id` with its steps.
pub async fn read(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<WorkflowView, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let row = owned(&mut conn, identity, id, false).await?;
    let steps = store::workflows::steps(&mut conn, row.id).await?;
    Ok(super::view(row, Some(steps)))
}

/// `GET /api/v1/workflows` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorkflowQuery {
    /// Only workflows in this status.
    pub status: Option<WorkflowStatus>,
    /// The page after this workflow id (the previous page's `next`).
    pub after: Option<Uuid>,
    /// 1 to 100 (default 50).
    pub limit: Option<i64>,
    /// Admins: every owner's (default: only the caller's).
    #[serde(default)]
    pub all: bool,
}

/// The caller's workflows, newest first (an admin's `all`: everyone's), with the next page's
/// cursor.
pub async fn list(
    state: &AppState,
    identity: &Identity,
    query: WorkflowQuery,
) -> Result<(Vec<WorkflowView>, Option<Uuid>), TaskError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(TaskError::invalid(
            "invalid_query",
            "limit must be 1 to 100",
        ));
    }
    if query.all && !identity.is_admin() {
        return Err(TaskError::Forbidden(
            "only an admin lists every owner's workflows".into(),
        ));
    }
    let owner = (!query.all).then_some(identity.user_id);
    let mut conn = state.pool.acquire().await?;
    let rows =
        store::workflows::list(&mut conn, owner, query.status, query.after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<WorkflowView> = rows
        .into_iter()
        .take(limit as usize)
        .map(|row| super::view(row, None))
        .collect();
    let next = more.then(|| page.last().map(|w| w.workflow.id)).flatten();
    Ok((page, next))
}
