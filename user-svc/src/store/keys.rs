//! The `signing_keys` table.

use sqlx::{PgConnection, PgPool};

use crate::domain::keys::KeyInfo;

pub async fn insert(
    pool: &PgPool,
    kid: &str,
    private_pem: &str,
    public_key: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO signing_keys (kid, private_pem, public_key) VALUES ($1, $2, $3)")
        .bind(kid)
        .bind(private_pem)
        .bind(public_key)
        .execute(pool)
        .await?;
    Ok(())
}

/// A key not retired: its id, private key (PKCS#8 PEM) and public key.
#[derive(sqlx::FromRow)]
pub struct ActiveKey {
    pub kid: String,
    pub private_pem: String,
    pub public_key: Vec<u8>,
}

/// The keys not retired, newest first.
pub async fn active(pool: &PgPool) -> Result<Vec<ActiveKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, private_pem, public_key FROM signing_keys
          WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC",
    )
    .fetch_all(pool)
    .await
}

/// Every key, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<KeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, kid DESC",
    )
    .fetch_all(pool)
    .await
}

/// The ids of the keys not retired, newest first, locked in `tx`.
pub async fn lock_active(tx: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL
          ORDER BY created_at DESC, kid DESC FOR UPDATE",
    )
    .fetch_all(tx)
    .await
}

pub async fn retire(tx: &mut PgConnection, kid: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE kid = $1")
        .bind(kid)
        .execute(tx)
        .await?;
    Ok(())
}
