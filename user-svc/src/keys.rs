//! Token signing keys: Ed25519, created on first start, kept in the database so tokens survive a
//! restart, and published as a JWK set for the gateway.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{pkcs8::EncodePrivateKey, SigningKey};
use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};
use sqlx::{PgPool, Row};

/// The active signing key and the public keys tokens may be verified with.
pub struct Keys {
    pub kid: String,
    pub encoding: EncodingKey,
    /// Every key not retired, newest first, as JWKs.
    pub jwks: Value,
}

/// Creates a new signing key; it signs from the next [`Keys::load`] on.
pub async fn create(pool: &PgPool) -> anyhow::Result<String> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("encoding a new signing key: {e}"))?;
    let kid = uuid::Uuid::now_v7().simple().to_string();
    sqlx::query("INSERT INTO signing_keys (kid, private_pem, public_key) VALUES ($1, $2, $3)")
        .bind(&kid)
        .bind(pem.as_str())
        .bind(key.verifying_key().to_bytes().to_vec())
        .execute(pool)
        .await?;
    tracing::info!(%kid, "created a token signing key");
    Ok(kid)
}

impl Keys {
    /// Loads the newest active key, creating one when there is none.
    pub async fn load_or_create(pool: &PgPool) -> anyhow::Result<Self> {
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
                .fetch_one(pool)
                .await?;
        if active == 0 {
            create(pool).await?;
        }
        Self::load(pool).await
    }

    /// Loads the active keys: the newest signs, all are published.
    pub async fn load(pool: &PgPool) -> anyhow::Result<Self> {
        let rows = sqlx::query(
            "SELECT kid, private_pem, public_key FROM signing_keys
              WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(pool)
        .await?;
        let newest = rows
            .first()
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let kid: String = newest.get("kid");
        let pem: String = newest.get("private_pem");
        let encoding = EncodingKey::from_ed_pem(pem.as_bytes())?;
        let keys: Vec<Value> = rows
            .iter()
            .map(|row| {
                let public: Vec<u8> = row.get("public_key");
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": row.get::<String, _>("kid"),
                    "x": URL_SAFE_NO_PAD.encode(public),
                })
            })
            .collect();
        Ok(Self {
            kid,
            encoding,
            jwks: json!({ "keys": keys }),
        })
    }
}
