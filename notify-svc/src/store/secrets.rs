//! Keys made once and shared by every replica.

use sqlx::PgPool;

/// The key named `name`, made from `fresh` by whichever replica asks first.
pub async fn get_or_create(
    pool: &PgPool,
    name: &str,
    fresh: Vec<u8>,
) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fresh)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
}
