//! PostgreSQL: one pool per service database, created if missing, migrated at start.
//!
//! Every service database gets the platform migrations (`migrations/platform`: outbox and
//! processed events) and then its own (`migrations/<service>`), applied by one migrator.

use std::borrow::Cow;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{migrate::Migrator, postgres::PgPoolOptions, Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::config::PostgresConfig;

static PLATFORM: Migrator = sqlx::migrate!("../migrations/platform");

/// The URL of `database` on the configured server.
pub fn database_url(config: &PostgresConfig, database: &str) -> Result<String, url::ParseError> {
    let mut url = url::Url::parse(config.url.expose_secret())?;
    url.set_path(database);
    Ok(url.to_string())
}

/// Creates `database` unless it exists. Safe when several services race to create it.
pub async fn ensure_database(config: &PostgresConfig, database: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(&database_url(config, "postgres")?).await?;
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
    crate::startup::retry("postgres", shutdown, || async {
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
