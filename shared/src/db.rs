//! PostgreSQL: one pool per service database, created if missing, migrated at start.
//!
//! Every service database gets the platform migrations (`migrations/platform`: outbox and
//! processed events) and then its own (`migrations/<service>`), applied by one migrator.

use std::borrow::Cow;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{migrate::Migrator, postgres::PgPoolOptions, ConnectOptions, Connection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::PostgresConfig;
use crate::problem::ApiError;
use crate::seal::{AtRest, Unsealable};

static PLATFORM: Migrator = sqlx::migrate!("../migrations/platform");

/// The URL of `database` on the configured server.
pub fn database_url(config: &PostgresConfig, database: &str) -> Result<String, url::ParseError> {
    let mut url = url::Url::parse(config.url.expose_secret())?;
    url.set_path(database);
    Ok(url.to_string())
}

/// Creates `database` unless it exists. Safe when several services race to create it.
pub async fn ensure_database(config: &PostgresConfig, database: &str) -> anyhow::Result<()> {
    let options: sqlx::postgres::PgConnectOptions = database_url(config, "postgres")?.parse()?;
    // CREATE DATABASE takes about a second on a busy machine: not a slow statement to warn
    // about at every first start (the creation is logged below).
    let mut conn = options.disable_statement_logging().connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database, "created database"),
            // 42P04 duplicate_database, 23505: another process created it at the same time.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

/// How many connections of a service's pool its background work (event handlers running at
/// once) may take: half, so that its API always has the other half.
pub fn background_share(config: &PostgresConfig) -> usize {
    (config.max_connections as usize / 2).max(1)
}

/// The platform migrations followed by `service`'s, as one migrator.
pub fn migrator(service: &Migrator) -> Migrator {
    let mut migrations: Vec<_> = PLATFORM.iter().chain(service.iter()).cloned().collect();
    migrations.sort_by_key(|m| m.version);
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Connects to `database` (creating it if allowed), applies migrations and returns the pool.
/// While PostgreSQL is unreachable it retries with backoff, logging each failure, until
/// `shutdown` fires.
pub async fn connect(
    config: &PostgresConfig,
    database: &str,
    service_migrations: &Migrator,
    shutdown: &CancellationToken,
) -> anyhow::Result<PgPool> {
    let migrator = migrator(service_migrations);
    crate::unreachable::retry("postgres", config.url.expose_secret(), shutdown, || async {
        if config.create_databases {
            ensure_database(config, database).await?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Duration::from_secs(300))
            .connect(&database_url(config, database)?)
            .await?;
        migrator.run(&pool).await?;
        Ok(pool)
    })
    .await
}

/// Whether `err` says the database could not be reached or dropped the connection (as opposed
/// to refusing the statement): the request or message is not at fault, and the same work
/// succeeds once the database is back. Connection I/O, an exhausted or closed pool, and the
/// server's own connection-exception (class 08) and shutdown (57P01–57P03) codes; too many
/// connections (53300).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// The same failure for another caller that shared the work (errors are not `Clone`), keeping
/// what [`is_unavailable`] says of it: a database that is away stays away for each of them.
pub fn echo(err: &sqlx::Error) -> sqlx::Error {
    match is_unavailable(err) {
        true => sqlx::Error::Io(std::io::Error::other(err.to_string())),
        false => sqlx::Error::Protocol(err.to_string()),
    }
}

/// How long [`commit`] keeps asking what became of a transaction whose COMMIT got no answer.
const COMMIT_RESOLVE_PATIENCE: Duration = Duration::from_secs(10);

/// How a [`commit`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The transaction did not commit: the server refused it, or it died with the connection.
    #[error(transparent)]
    Failed(sqlx::Error),
    /// It may have committed: the answer was lost and the server could not say. The caller must
    /// neither report a failure (a retry could do it twice) nor undo what it did outside the
    /// database; HTTP answers 504 `outcome_unknown`.
    #[error("the outcome of a COMMIT is unknown: {0}")]
    Unknown(sqlx::Error),
}

/// Commits `tx`, and when the connection fails during COMMIT (the server may have committed and
/// the answer been lost with the connection), asks the server on another connection what became
/// of the transaction (`pg_xact_status`), so a committed creation is not answered as a failure
/// that the client would retry into a second one.
///
/// A server that restarted in between (`pg_postmaster_start_time` changed) may have handed the
/// same transaction id to someone else: an id is not logged when it is given out, so after a
/// crash the ids of transactions whose records never reached the log are given out again. There
/// "committed" proves nothing and the outcome is [`CommitError::Unknown`]; "aborted", or an id
/// the server has not reached again, proves the transaction never committed.
pub async fn commit(
    pool: &PgPool,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<(), CommitError> {
    let (xid, started): (String, String) =
        sqlx::query_as("SELECT pg_current_xact_id()::text, pg_postmaster_start_time()::text")
            .fetch_one(&mut *tx)
            .await
            .map_err(CommitError::Failed)?;
    let err = match tx.commit().await {
        Ok(()) => return Ok(()),
        Err(err) if is_unavailable(&err) => err,
        Err(err) => return Err(CommitError::Failed(err)),
    };
    let policy =
        crate::backoff::Policy::exponential(Duration::from_millis(20), Duration::from_millis(500))
            .give_up_after(COMMIT_RESOLVE_PATIENCE);
    let mut backoff = crate::backoff::Backoff::new(policy);
    let never = tokio_util::sync::CancellationToken::new();
    loop {
        let status: Result<(Option<String>, String), sqlx::Error> = sqlx::query_as(
            "SELECT pg_xact_status($1::text::xid8), pg_postmaster_start_time()::text",
        )
        .bind(&xid)
        .fetch_one(pool)
        .await;
        match status {
            Ok((Some(status), now)) if status == "committed" => {
                if now == started {
                    tracing::info!(%xid, error = %err, "the COMMIT's answer was lost, but it committed");
                    return Ok(());
                }
                tracing::warn!(%xid, error = %err, "the database restarted during a COMMIT; its outcome is unknown");
                return Err(CommitError::Unknown(err));
            }
            Ok((Some(status), _)) if status == "aborted" => return Err(CommitError::Failed(err)),
            Ok((None, _)) => return Err(CommitError::Failed(err)),
            // 22023: the id is past the server's next one, so the server restarted without any
            // record of the transaction.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("22023") => {
                return Err(CommitError::Failed(err))
            }
            // In progress, or the database is still away: ask again.
            _ => {}
        }
        if !backoff.wait(&never).await {
            break;
        }
    }
    tracing::warn!(%xid, error = %err, "a COMMIT's outcome is unknown");
    Err(CommitError::Unknown(err))
}

/// A signing key: the configured one, or else a random one made once under `name` in the
/// service's `secrets` table ([`shared_secret`]), so that every replica signs alike.
pub async fn signing_key(
    pool: &sqlx::PgPool,
    at_rest: &AtRest,
    name: &str,
    configured: Option<&secrecy::SecretString>,
) -> anyhow::Result<Vec<u8>> {
    use rand::RngCore;
    use secrecy::ExposeSecret;
    match configured {
        Some(secret) => Ok(secret.expose_secret().as_bytes().to_vec()),
        None => {
            let mut fresh = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut fresh);
            shared_secret(pool, at_rest, name, fresh).await
        }
    }
}

/// The key named `name` in the service's `secrets (name text PRIMARY KEY, value bytea)` table,
/// made from `fresh` by whichever replica asks first, so that every replica signs with the same
/// key. It is kept sealed ([`AtRest`]); one kept in the clear by an earlier version, or sealed
/// under a key that is no longer current, is sealed again now.
pub async fn shared_secret(
    pool: &sqlx::PgPool,
    at_rest: &AtRest,
    name: &str,
    fresh: Vec<u8>,
) -> anyhow::Result<Vec<u8>> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(at_rest.seal(&fresh).into_bytes())
        .execute(pool)
        .await?;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?;
    let (key, kept) = match std::str::from_utf8(&stored).map(|s| (s, at_rest.open(s))) {
        Ok((sealed, Ok(key))) => (key, at_rest.reseal(sealed)?),
        Ok((_, Err(err))) if err != Unsealable::NotSealed => {
            anyhow::bail!("the {name} key in the database cannot be opened: {err}")
        }
        // Kept in the clear before secrets were sealed.
        _ => (stored.clone(), Some(at_rest.seal(&stored))),
    };
    if let Some(kept) = kept {
        tracing::info!(name, "sealed a stored link key under the current key");
        // Only over the value read: a replica that sealed it meanwhile keeps its own.
        sqlx::query("UPDATE secrets SET value = $3 WHERE name = $1 AND value = $2")
            .bind(name)
            .bind(&stored)
            .bind(kept.into_bytes())
            .execute(pool)
            .await?;
    }
    Ok(key)
}

/// Seals every value of `table.column` not sealed under the current key (kept in the clear by
/// an earlier version, or under a key being rotated out), one row at a time, each only if it is
/// still the value read. A value no key here opens is logged and left as it is (what uses it
/// fails, naming the key it needs). Returns how many changed.
pub async fn reseal_column(
    pool: &sqlx::PgPool,
    at_rest: &AtRest,
    table: &str,
    column: &str,
) -> anyhow::Result<u64> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT ctid::text, {column} FROM {table} WHERE {column} IS NOT NULL"
    ))
    .fetch_all(pool)
    .await?;
    let mut changed = 0;
    for (row, stored) in rows {
        let kept = match at_rest.reseal(&stored) {
            Ok(Some(kept)) => kept,
            Ok(None) => continue,
            Err(err) => {
                tracing::error!(table, column, error = %err, "a stored secret cannot be opened; left as it is");
                continue;
            }
        };
        // By the row's place, only if the value is still the one read (a row another replica
        // changed meanwhile has moved, and is left to it).
        changed += sqlx::query(&format!(
            "UPDATE {table} SET {column} = $3 WHERE ctid = $1::tid AND {column} = $2"
        ))
        .bind(&row)
        .bind(&stored)
        .bind(kept)
        .execute(pool)
        .await?
        .rows_affected();
    }
    if changed > 0 {
        tracing::info!(
            table,
            column,
            changed,
            "sealed stored secrets under the current key"
        );
    }
    Ok(changed)
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            err if is_unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::unavailable("database")
            }
            // PostgreSQL refuses text with a NUL character (character_not_in_repertoire): a
            // value the client sent that no validation caught, so the request's fault, not ours.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => {
                ApiError::bad_request("invalid_text", "text must not contain NUL characters")
            }
            _ => ApiError::internal(err),
        }
    }
}

impl From<CommitError> for ApiError {
    fn from(err: CommitError) -> Self {
        match err {
            CommitError::Failed(err) => err.into(),
            CommitError::Unknown(_) => ApiError::new(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                "the database did not confirm the change, which may or may not have been made; \
                 look before trying again, or retry with the same Idempotency-Key",
            ),
        }
    }
}
