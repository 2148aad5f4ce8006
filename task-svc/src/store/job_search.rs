//! An operator's job search: one set of conditions for a page of jobs and for their counts
//! by state.

use sqlx::{postgres::PgArguments, query::QueryAs, PgPool, Postgres};

use crate::domain::{
    job_search::{JobFilter, JobSummary},
    status::Status,
};

/// The filter's conditions on `t` (tasks) and `j` (jobs), `$1` to `$8`; `$2`, the state, is
/// NULL when counting.
const CONDITIONS: &str = "($1::text IS NULL OR j.kind = $1)
    AND ($2::text IS NULL OR t.status = $2)
    AND ($3::text IS NULL OR j.pool = $3)
    AND ($4::uuid IS NULL OR t.owner_id = $4)
    AND ($5::jsonb IS NULL OR j.payload @> $5)
    AND ($6::text IS NULL OR j.last_error ILIKE $6)
    AND ($7::timestamptz IS NULL OR t.created_at >= $7)
    AND ($8::timestamptz IS NULL OR t.created_at < $8)";

fn bind<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    filter: &'q JobFilter,
    state: Option<Status>,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(filter.kind.as_deref())
        .bind(state)
        .bind(filter.pool.as_deref())
        .bind(filter.owner)
        .bind(filter.payload.as_ref())
        .bind(filter.error_like.as_deref())
        .bind(filter.created_after)
        .bind(filter.created_before)
}

/// Jobs matching every filter, newest (or oldest) first from the cursor, at most `limit`.
pub async fn search(
    pool: &PgPool,
    filter: &JobFilter,
    limit: i64,
) -> Result<Vec<JobSummary>, sqlx::Error> {
    let (cursor, order) = match filter.oldest_first {
        false => ("($9::uuid IS NULL OR t.id < $9)", "DESC"),
        true => ("($9::uuid IS NULL OR t.id > $9)", "ASC"),
    };
    let sql = format!(
        "SELECT t.id AS task_id, t.owner_id, u.display_name AS owner_name, t.title, t.status,
                t.priority, j.kind, j.pool, j.payload, j.attempt, j.max_attempts, j.last_error,
                t.created_at, j.run_at, j.finished_at,
                (SELECT (extract(epoch FROM coalesce(a.ended_at, now()) - a.started_at)
                         * 1000)::int8
                   FROM job_attempts a WHERE a.task_id = t.id AND a.started_at IS NOT NULL
                  ORDER BY a.started_at DESC LIMIT 1) AS duration_ms
           FROM tasks t JOIN jobs j ON j.task_id = t.id
           LEFT JOIN users u ON u.id = t.owner_id
          WHERE {CONDITIONS} AND {cursor}
          ORDER BY t.id {order}
          LIMIT $10"
    );
    bind(sqlx::query_as(&sql), filter, filter.state)
        .bind(filter.cursor)
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// How many jobs the filter (its state and cursor aside) selects in each state.
pub async fn counts(pool: &PgPool, filter: &JobFilter) -> Result<Vec<(Status, i64)>, sqlx::Error> {
    let sql = format!(
        "SELECT t.status, count(*) FROM tasks t JOIN jobs j ON j.task_id = t.id
          WHERE {CONDITIONS} GROUP BY t.status"
    );
    bind(sqlx::query_as(&sql), filter, None)
        .fetch_all(pool)
        .await
}
