//! Signed download links: `<public_url>/api/v1/media/<id>/content?[variant=<v>&]expires=<unix
//! seconds>&signature=<mac>`, where the MAC (HMAC-SHA256 under a key only media-svc holds) binds
//! the method, the file, the variant and the expiry. Anyone holding the link may download that
//! one object with that one method until it expires; nothing else.

use chrono::{DateTime, Utc};
use shared::{
    config::FilesConfig,
    signing::{lines, MacKey},
};
use sqlx::PgPool;

#[derive(Debug)]
pub struct Signer {
    key: MacKey,
    base: String,
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link has expired; ask for a new one")]
    Expired,
    #[error("this link is not valid (it was changed, or is for another file or method)")]
    Invalid,
}

impl Signer {
    pub fn new(key: Vec<u8>, public_url: &str) -> Self {
        Self {
            key: MacKey::new(key),
            base: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The configured key, or the one kept in the database (made by the first replica).
    pub async fn load(
        pool: &PgPool,
        at_rest: &shared::seal::AtRest,
        config: &FilesConfig,
    ) -> anyhow::Result<Self> {
        let key =
            shared::db::signing_key(pool, at_rest, "download-links", config.link_secret.as_ref())
                .await?;
        Ok(Self::new(key, &config.public_url))
    }

    /// A GET link to `media_id` (its `variant`, or the file itself when empty) until `expires`.
    pub fn url(&self, media_id: &str, variant: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let expiry = expires.to_string();
        let fields = ["taskmesh-download", "GET", media_id, variant, &expiry];
        let signature = self.key.tag_b64(&lines(&fields));
        let variant = match variant {
            "" => String::new(),
            v => format!("variant={v}&"),
        };
        format!(
            "{}/api/v1/media/{media_id}/content?{variant}expires={expires}&signature={signature}",
            self.base,
        )
    }

    /// Checks a link's parts as the request carries them; the MAC is compared in constant time.
    pub fn verify(
        &self,
        method: &str,
        media_id: &str,
        variant: &str,
        expires: &str,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let expiry: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        // Fields framed by a byte none of them may hold.
        let canonical = expiry.to_string();
        let fields = ["taskmesh-download", method, media_id, variant, &canonical];
        if !self.key.verify_b64(&lines(&fields), signature) {
            return Err(LinkError::Invalid);
        }
        if now.timestamp() >= expiry {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, String, String) {
        let query = url.split_once('?').unwrap().1;
        let get = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap_or("")
                .to_string()
        };
        let id = url
            .split("/media/")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        (
            id.to_string(),
            get("variant"),
            get("expires"),
            get("signature"),
        )
    }

    #[test]
    fn a_link_works_until_it_expires_and_not_once_changed() {
        let signer = Signer::new(b"k".repeat(32), "http://example.com/");
        let now = Utc::now();
        let url = signer.url("m1", "thumb-256", now + chrono::Duration::seconds(60));
        assert!(url
            .starts_with("http://example.com/api/v1/media/m1/content?variant=thumb-256&expires="));
        let (id, variant, expires, signature) = parts(&url);
        let check = |method: &str, id: &str, variant: &str, expires: &str, sig: &str, at| {
            signer.verify(method, id, variant, expires, sig, at)
        };
        assert_eq!(
            check("GET", &id, &variant, &expires, &signature, now),
            Ok(())
        );
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(
            check("GET", &id, &variant, &expires, &signature, later),
            Err(LinkError::Expired)
        );
        assert_eq!(
            check("DELETE", &id, &variant, &expires, &signature, now),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            check("GET", "m2", &variant, &expires, &signature, now),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            check("GET", &id, "", &expires, &signature, now),
            Err(LinkError::Invalid)
        );
        let pushed = (expires.parse::<i64>().unwrap() + 3600).to_string();
        assert_eq!(
            check("GET", &id, &variant, &pushed, &signature, now),
            Err(LinkError::Invalid)
        );
        let mut forged = signature.clone().into_bytes();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            check("GET", &id, &variant, &expires, &forged, now),
            Err(LinkError::Invalid)
        );
        let stranger = Signer::new(b"x".repeat(32), "http://example.com");
        assert_eq!(
            stranger.verify("GET", &id, &variant, &expires, &signature, now),
            Err(LinkError::Invalid)
        );
    }
}
