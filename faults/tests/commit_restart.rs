//! `shared::db::commit` when PostgreSQL crashes during a COMMIT: the transaction, none of whose
//! records reached the log, never committed, and the restarted server hands its id out again to
//! the next transactions. The commit must not be reported as done (the fault suite once saw a
//! task answered 201 that did not exist: docs/reliability.md, finding 8).
//!
//! On the suite's private PostgreSQL (port 23432), with the WAL writer slowed down so that the
//! transaction's records stay in memory until the crash. The COMMIT is held in a deferred
//! trigger's `pg_sleep` while the server is stopped with `-m immediate`.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use faults::infra::{pg_addr, Infra};
use sqlx::postgres::PgPoolOptions;

async fn until<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = f().await {
            return Ok(value);
        }
        ensure!(Instant::now() < end, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn crash_during_commit(infra: &Infra) -> anyhow::Result<()> {
    let url = format!("postgres://postgres@{}/postgres", pg_addr());
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE t (id int);
         CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED
           FOR EACH ROW EXECUTE FUNCTION slow();
         CHECKPOINT;",
    )
    .execute(&pool)
    .await?;

    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut *tx)
        .await?;
    let committing = tokio::spawn({
        let pool = pool.clone();
        async move { shared::db::commit(&pool, tx).await }
    });
    // The COMMIT is in the trigger's sleep: its transaction id is known, its records unflushed.
    let xid: i64 = until(
        "the COMMIT reaching the trigger",
        Duration::from_secs(10),
        || async {
            sqlx::query_scalar::<_, i64>(
            "SELECT backend_xid::text::bigint FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        },
    )
    .await?;
    infra.stop_postgres().await?;
    infra.start_postgres().await?;
    // The next transactions get the lost one's id again.
    until(
        "the lost transaction id handed out again",
        Duration::from_secs(20),
        || async {
            let next: Option<i64> = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
                .fetch_one(&pool)
                .await
                .ok();
            next.filter(|next| *next > xid)
        },
    )
    .await?;

    let outcome = committing.await.context("the commit task")?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&pool)
        .await?;
    ensure!(rows == 0, "the crash lost the row, but {rows} are there");
    ensure!(
        outcome.is_err(),
        "a COMMIT lost in the crash was reported as committed (transaction {xid})"
    );
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn a_commit_lost_in_a_crash_is_never_reported_committed() {
    let dir = std::env::temp_dir().join(format!("taskmesh-commit-restart-{}", std::process::id()));
    // The WAL writer would otherwise flush the transaction's records within 200 ms.
    let infra = Infra::postgres_only(&dir, "-c wal_writer_delay=10000")
        .await
        .expect("the private PostgreSQL starts");
    let result = crash_during_commit(&infra).await;
    let stopped = infra.stop_postgres_only().await;
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap();
    stopped.unwrap();
}
