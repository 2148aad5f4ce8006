//! Stream tickets: `EventSource` cannot send an `Authorization` header, and a long-lived token
//! must never travel in a URL (it ends up in logs and histories). A ticket is 32 random bytes,
//! good for one stream opened within `stream.ticket_secs`; Redis keeps only its SHA-256, with
//! the identity it stands for, and hands that out once (`GETDEL`). Redis is not trusted to say
//! who a ticket is for: the identity carries a tag under a key derived from `internal.secret`,
//! which the gateways hold and workers (which may reach Redis) do not, and it must name a
//! session, which must still be live. An entry written into Redis by anyone else opens nothing.

use base64::Engine;
use rand::RngCore;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::identity::{Identity, Role};
use shared::signing::{lines, MacKey};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct Stored {
    user_id: Uuid,
    role: Role,
    session_id: Uuid,
    /// [`tag`] of the above under the gateways' ticket key.
    tag: String,
}

/// The gateways' ticket key: derived from `internal.secret`, which every gateway holds.
pub fn key(
    internal: &shared::config::InternalConfig,
) -> Result<MacKey, shared::internal::MissingSecret> {
    shared::internal::purpose_key(internal, "taskmesh stream tickets")
}

/// The MAC parts of a ticket's entry: its Redis key (the ticket's digest) and the identity.
fn parts(redis_key: &str, user_id: Uuid, role: Role, session_id: Uuid) -> [String; 4] {
    [
        redis_key.to_string(),
        user_id.to_string(),
        role.as_str().to_string(),
        session_id.to_string(),
    ]
}

fn redis_key(prefix: &str, ticket: &str) -> String {
    let digest = Sha256::digest(ticket.as_bytes());
    format!("{prefix}stream:ticket:{}", hex::encode(digest))
}

/// A new ticket for `identity` and its session.
pub async fn issue(
    redis: &ConnectionManager,
    prefix: &str,
    tickets: &MacKey,
    (identity, session_id): (&Identity, Uuid),
    ttl_secs: u64,
) -> redis::RedisResult<String> {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let key = redis_key(prefix, &ticket);
    let fields = parts(&key, identity.user_id, identity.role, session_id);
    let stored = Stored {
        user_id: identity.user_id,
        role: identity.role,
        session_id,
        tag: tickets.tag_b64(&lines(&fields.each_ref().map(String::as_str))),
    };
    let value = serde_json::to_string(&stored).expect("serialisable");
    let mut conn = redis.clone();
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(ttl_secs)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(ticket)
}

/// The identity `ticket` stands for, if it is live, unused and was issued by a gateway; it is
/// used up either way.
pub async fn redeem(
    redis: &ConnectionManager,
    prefix: &str,
    tickets: &MacKey,
    ticket: &str,
) -> redis::RedisResult<Option<Identity>> {
    // A ticket is 43 characters; anything else was never issued (and is not hashed for nothing).
    if ticket.len() != 43 {
        return Ok(None);
    }
    let mut conn = redis.clone();
    let key = redis_key(prefix, ticket);
    let value: Option<String> = redis::cmd("GETDEL")
        .arg(&key)
        .query_async(&mut conn)
        .await?;
    Ok(value
        .and_then(|v| serde_json::from_str::<Stored>(&v).ok())
        .filter(|s| {
            let fields = parts(&key, s.user_id, s.role, s.session_id);
            tickets.verify_b64(&lines(&fields.each_ref().map(String::as_str)), &s.tag)
        })
        .map(|s| Identity {
            user_id: s.user_id,
            role: s.role,
            session_id: Some(s.session_id),
            scopes: None,
        }))
}
