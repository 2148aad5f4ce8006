//! Token cryptography: Ed25519 signing keys (created on first start, kept in the database so
//! tokens survive a restart, published as a JWK set for the gateway), EdDSA access tokens with
//! `iss`, `aud`, `exp`, `iat`, `sub`, `role`, `sid` and the key's `kid` in the header, and opaque
//! refresh tokens, stored only as their SHA-256.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::{pkcs8::EncodePrivateKey, SigningKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::{config::AuthConfig, identity::Role};
use uuid::Uuid;

use crate::store::keys::ActiveKey;

/// The active signing key and the public keys tokens may be verified with.
pub struct Keys {
    pub kid: String,
    pub encoding: EncodingKey,
    /// Every key not retired, newest first, as JWKs.
    pub jwks: Value,
}

impl Keys {
    /// From the keys not retired, newest first: the newest signs, all are published.
    pub fn from_active(active: &[ActiveKey]) -> anyhow::Result<Self> {
        let newest = active
            .first()
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let encoding = EncodingKey::from_ed_pem(newest.private_pem.as_bytes())?;
        let keys: Vec<Value> = active
            .iter()
            .map(|key| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": key.kid,
                    "x": URL_SAFE_NO_PAD.encode(&key.public_key),
                })
            })
            .collect();
        Ok(Self {
            kid: newest.kid.clone(),
            encoding,
            jwks: json!({ "keys": keys }),
        })
    }
}

/// A new signing key: its id, private key (PKCS#8 PEM) and public key.
pub fn generate() -> anyhow::Result<(String, String, Vec<u8>)> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("encoding a new signing key: {e}"))?;
    let kid = Uuid::now_v7().simple().to_string();
    Ok((
        kid,
        pem.as_str().to_string(),
        key.verifying_key().to_bytes().to_vec(),
    ))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub role: Role,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs an access token for a user in a session with `keys`' newest key.
pub fn access_token(
    keys: &Keys,
    auth: &AuthConfig,
    user_id: Uuid,
    role: Role,
    session_id: Uuid,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: auth.issuer.clone(),
        aud: auth.audience.clone(),
        sub: user_id.to_string(),
        role,
        sid: session_id.to_string(),
        iat: now,
        exp: now + auth.access_token_ttl_secs as i64,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(keys.kid.clone());
    Ok(jsonwebtoken::encode(&header, &claims, &keys.encoding)?)
}

/// A new opaque token (a refresh token, an email verification link's) and the hash that is
/// stored.
pub fn opaque_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// What is stored of an opaque token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
