//! Stream tickets: `EventSource` cannot send an `Authorization` header, and a long-lived token
//! must never travel in a URL (it ends up in logs and histories). A ticket is 32 random bytes,
//! good for one stream opened within `stream.ticket_secs`; Redis keeps only its SHA-256, with
//! the identity it stands for, and hands that out once (`GETDEL`).

use base64::Engine;
use rand::RngCore;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::identity::{Identity, Role};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct Stored {
    user_id: Uuid,
    role: Role,
    session_id: Option<Uuid>,
}

fn key(prefix: &str, ticket: &str) -> String {
    let digest = Sha256::digest(ticket.as_bytes());
    format!("{prefix}stream:ticket:{}", hex::encode(digest))
}

/// A new ticket for `identity`.
pub async fn issue(
    redis: &ConnectionManager,
    prefix: &str,
    identity: &Identity,
    ttl_secs: u64,
) -> redis::RedisResult<String> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let stored = Stored {
        user_id: identity.user_id,
        role: identity.role,
        session_id: identity.session_id,
    };
    let value = serde_json::to_string(&stored).expect("serialisable");
    let mut conn = redis.clone();
    redis::cmd("SET")
        .arg(key(prefix, &ticket))
        .arg(value)
        .arg("EX")
        .arg(ttl_secs)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(ticket)
}

/// The identity `ticket` stands for, if it is live and unused; it is used up either way.
pub async fn redeem(
    redis: &ConnectionManager,
    prefix: &str,
    ticket: &str,
) -> redis::RedisResult<Option<Identity>> {
    // A ticket is 43 characters; anything else was never issued (and is not hashed for nothing).
    if ticket.len() != 43 {
        return Ok(None);
    }
    let mut conn = redis.clone();
    let value: Option<String> = redis::cmd("GETDEL")
        .arg(key(prefix, ticket))
        .query_async(&mut conn)
        .await?;
    Ok(value
        .and_then(|v| serde_json::from_str::<Stored>(&v).ok())
        .map(|s| Identity {
            user_id: s.user_id,
            role: s.role,
            session_id: s.session_id,
        }))
}
