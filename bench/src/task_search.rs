//! `bench tasks`, its search part: one person's 100,000 tasks listed by label (tag) and by
//! full-text search through the gateway (`GET /api/v1/tasks?tag=…&limit=50`, `?q=…&limit=50`),
//! p50 and p99 next to the same SQL (task-svc's own query text) run straight on PostgreSQL from
//! as many concurrent clients, in the same run.

use std::sync::Arc;
use std::time::Instant;

use shared::testkit::TestEnv;
use sqlx::PgPool;
use task_svc::store::tasks::{COLUMNS, PEOPLE_STATUSES, SEARCH_TEXT};
use uuid::Uuid;

use crate::gateway::{load, CONCURRENCY};
use crate::{figures, platform, Figures};

/// Tasks of the one person.
pub const TASKS: i64 = 100_000;
/// Queries per path.
const QUERIES: usize = 2_000;

/// 1 task in 100 is labelled `roof`, another 1 in 100 says "gutter": each query finds 1,000 and
/// answers its first page.
const SEED: &str = "INSERT INTO tasks (id, owner_id, title, description, priority, tags, created_at)
    SELECT gen_random_uuid(), $1,
           (ARRAY['Fix','Paint','Order','Check','Clean','Plan','Move','Call'])[1 + g % 8]
             || ' the ' || (ARRAY['fence','tiles','yard','door','window','garage','attic','cellar','shed'])[1 + (g / 8) % 9]
             || ' #' || g,
           CASE WHEN g % 100 = 0 THEN 'the gutter leaks after rain' ELSE 'nothing out of the way' END,
           'normal',
           CASE WHEN g % 100 = 1 THEN ARRAY['roof'] WHEN g % 10 = 2 THEN ARRAY['home'] ELSE ARRAY[]::text[] END,
           now() - g * interval '1 second'
      FROM generate_series(1, $2) g";

/// The rows of the search table: each path through the gateway, then its SQL.
pub async fn run(env: &TestEnv, token: &str) -> anyhow::Result<Vec<(String, Figures)>> {
    let http = reqwest::Client::new();
    let me: serde_json::Value = http
        .get(format!("{}/users/me", platform::API))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let user = Uuid::parse_str(me["id"].as_str().unwrap_or_default())?;
    let url = shared::db::database_url(&env.config.postgres, &env.config.task.database)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONCURRENCY as u32)
        .connect(&url)
        .await?;
    let started = Instant::now();
    sqlx::query(SEED)
        .bind(user)
        .bind(TASKS)
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE tasks").execute(&pool).await?;
    println!(
        "seeded {TASKS} tasks in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let visible = "(owner_id = $1 OR assignee_id = $1 OR channel_id IN \
                   (SELECT channel_id FROM channel_members WHERE user_id = $1))";
    let page = "ORDER BY created_at DESC, id DESC LIMIT 51";
    let by_label = format!(
        "SELECT {COLUMNS} FROM tasks WHERE {visible} AND tags <> '{{}}' AND tags @> ARRAY[$2]::text[] {page}"
    );
    let by_words = format!(
        "SELECT {COLUMNS} FROM tasks WHERE {visible} AND status IN {PEOPLE_STATUSES} \
         AND {SEARCH_TEXT} @@ to_tsquery('simple', $2) {page}"
    );
    let api = |query: &str| format!("{}/tasks?{query}&limit=50", platform::API);
    let mut rows = Vec::new();
    load(&api("tag=roof"), token, 200).await?; // warm-up
    let label = load(&api("tag=roof"), token, QUERIES).await?;
    rows.push(("GET /api/v1/tasks?tag=roof&limit=50".to_string(), label));
    rows.push((
        format!("the same SQL ({CONCURRENCY} clients)"),
        sql(&pool, &by_label, user, "roof").await?,
    ));
    let search = load(&api("q=gutter"), token, QUERIES).await?;
    rows.push(("GET /api/v1/tasks?q=gutter&limit=50".to_string(), search));
    rows.push((
        format!("the same SQL ({CONCURRENCY} clients)"),
        sql(&pool, &by_words, user, "gutter:*").await?,
    ));
    pool.close().await;
    Ok(rows)
}

/// `QUERIES` runs of `query` ($1 the user, $2 `arg`) from `CONCURRENCY` clients; each must
/// answer a full page.
async fn sql(pool: &PgPool, query: &str, user: Uuid, arg: &str) -> anyhow::Result<Figures> {
    let query: Arc<str> = query.into();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (pool, query, arg) = (pool.clone(), query.clone(), arg.to_string());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..QUERIES / CONCURRENCY {
                let sent = Instant::now();
                let rows = sqlx::query(&query)
                    .bind(user)
                    .bind(&arg)
                    .fetch_all(&pool)
                    .await?;
                anyhow::ensure!(rows.len() == 51, "{} rows", rows.len());
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(figures(latencies.len(), started.elapsed(), latencies))
}
