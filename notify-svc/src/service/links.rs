//! Signed unsubscribe links: `<public_url>/api/v1/notifications/unsubscribe?token=<payload>.<mac>`
//! where the payload names the person, the day the link was made and the kind, and the MAC is an
//! HMAC-SHA256 under a key only notify-svc holds. The link works without logging in, only for
//! what it names, and for `notifications.unsubscribe_link_days` after that day.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use shared::{config::NotificationsConfig, signing::MacKey};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::Kind;

/// Signs and checks unsubscribe tokens.
#[derive(Debug)]
pub struct Signer {
    key: MacKey,
    base: String,
    /// Days a link works after the day it was made.
    valid_days: u32,
}

impl Signer {
    pub fn new(key: Vec<u8>, public_url: &str, valid_days: u32) -> Self {
        Self {
            key: MacKey::new(key),
            base: public_url.trim_end_matches('/').to_string(),
            valid_days,
        }
    }

    /// The configured key, or the one kept in the database (made by the first replica).
    pub async fn load(
        pool: &PgPool,
        at_rest: &shared::seal::AtRest,
        config: &NotificationsConfig,
    ) -> anyhow::Result<Self> {
        let key = shared::db::signing_key(
            pool,
            at_rest,
            "unsubscribe-links",
            config.link_secret.as_ref(),
        )
        .await?;
        Ok(Self::new(
            key,
            &config.public_url,
            config.unsubscribe_link_days,
        ))
    }

    /// What the MAC covers.
    fn parts(payload: &[u8]) -> [&[u8]; 2] {
        [b"taskmesh-unsubscribe:", payload]
    }

    /// The token that turns `kind` off for `user_id`, made today.
    pub fn token(&self, user_id: Uuid, kind: Kind) -> String {
        self.token_of_day(user_id, kind, today())
    }

    fn token_of_day(&self, user_id: Uuid, kind: Kind, day: u32) -> String {
        let mut payload = user_id.as_bytes().to_vec();
        payload.extend_from_slice(&day.to_be_bytes());
        payload.extend_from_slice(kind.as_str().as_bytes());
        let tag = self.key.tag_b64(&Self::parts(&payload));
        format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&payload))
    }

    /// The whole link.
    pub fn url(&self, user_id: Uuid, kind: Kind) -> String {
        format!(
            "{}/api/v1/notifications/unsubscribe?token={}",
            self.base,
            self.token(user_id, kind)
        )
    }

    /// Who and what a token names, if it is intact (the MAC compared in constant time) and
    /// was made no more than the configured number of days ago.
    pub fn verify(&self, token: &str) -> Option<(Uuid, Kind)> {
        self.verify_on(token, today())
    }

    fn verify_on(&self, token: &str, today: u32) -> Option<(Uuid, Kind)> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        if !self.key.verify_b64(&Self::parts(&payload), tag) {
            return None;
        }
        if payload.len() <= 20 {
            return None;
        }
        let user_id = Uuid::from_slice(&payload[..16]).ok()?;
        let day = u32::from_be_bytes(payload[16..20].try_into().ok()?);
        // A day of grace the other way: a replica whose clock is behind, just past midnight.
        if day > today.saturating_add(1) || today.saturating_sub(day) > self.valid_days {
            return None;
        }
        let kind = std::str::from_utf8(&payload[20..])
            .ok()?
            .parse::<Kind>()
            .ok()?;
        Some((user_id, kind))
    }

    /// The platform's public URL with `path` appended.
    pub fn absolute(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Days since the Unix epoch, UTC.
fn today() -> u32 {
    u32::try_from(chrono::Utc::now().timestamp() / 86_400).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_person_and_kind_and_nothing_altered_passes() {
        let signer = Signer::new(b"k".repeat(32), "http://example.com/", 90);
        let user = Uuid::now_v7();
        let token = signer.token(user, Kind::TaskAssigned);
        assert_eq!(signer.verify(&token), Some((user, Kind::TaskAssigned)));
        assert!(signer
            .url(user, Kind::TaskAssigned)
            .starts_with("http://example.com/api/v1/notifications/unsubscribe?token="));
        // Another kind's payload with this MAC, a cut MAC, another key: refused.
        let (_, tag) = token.split_once('.').unwrap();
        let mut other = user.as_bytes().to_vec();
        other.extend_from_slice(&today().to_be_bytes());
        other.extend_from_slice(b"task.due_soon");
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(other));
        assert_eq!(signer.verify(&forged), None);
        assert_eq!(signer.verify(&token[..token.len() - 2]), None);
        let stranger = Signer::new(b"x".repeat(32), "http://example.com", 90);
        assert_eq!(stranger.verify(&token), None);
        assert_eq!(signer.verify("garbage"), None);
    }

    #[test]
    fn a_link_works_for_its_days_and_not_after() {
        let signer = Signer::new(b"k".repeat(32), "http://example.com", 90);
        let user = Uuid::now_v7();
        let made = 20_000;
        let token = signer.token_of_day(user, Kind::TaskAssigned, made);
        for day in [made - 1, made, made + 1, made + 90] {
            assert_eq!(
                signer.verify_on(&token, day),
                Some((user, Kind::TaskAssigned)),
                "day {day}"
            );
        }
        assert_eq!(signer.verify_on(&token, made + 91), None);
        // Made further "in the future" than a clock's skew: refused too.
        assert_eq!(signer.verify_on(&token, made - 2), None);
        // A link of the earlier form (no day) names nobody.
        let mut old = user.as_bytes().to_vec();
        old.extend_from_slice(b"task.assigned");
        let tag = signer.key.tag_b64(&Signer::parts(&old));
        let old = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&old));
        assert_eq!(signer.verify_on(&old, made), None);
    }
}
