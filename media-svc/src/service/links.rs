//! Signed download links: `<public_url>/api/v1/media/<id>/content?[variant=<v>&]expires=<unix
//! seconds>&signature=<mac>`, where the MAC (HMAC-SHA256 under a key only media-svc holds) binds
//! the method, the file, the variant and the expiry. Anyone holding the link may download that
//! one object with that one method until it expires; nothing else.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use shared::config::FilesConfig;
use sqlx::PgPool;

type HmacSha256 = Hmac<Sha256>;
use sha2::Sha256;

pub struct Signer {
    key: Vec<u8>,
    base: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
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
            key,
            base: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The configured key, or the one kept in the database (made by the first replica).
    pub async fn load(pool: &PgPool, config: &FilesConfig) -> anyhow::Result<Self> {
        let key =
            shared::db::signing_key(pool, "download-links", config.link_secret.as_ref()).await?;
        Ok(Self::new(key, &config.public_url))
    }

    fn mac(&self, method: &str, media_id: &str, variant: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        // Fields separated by a byte none of them may hold.
        for field in [
            "taskmesh-download",
            method,
            media_id,
            variant,
            &expires.to_string(),
        ] {
            mac.update(field.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// A GET link to `media_id` (its `variant`, or the file itself when empty) until `expires`.
    pub fn url(&self, media_id: &str, variant: &str, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        let tag = self
            .mac("GET", media_id, variant, expires)
            .finalize()
            .into_bytes();
        let variant = match variant {
            "" => String::new(),
            v => format!("variant={v}&"),
        };
        format!(
            "{}/api/v1/media/{media_id}/content?{variant}expires={expires}&signature={}",
            self.base,
            URL_SAFE_NO_PAD.encode(tag)
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
        let expires: i64 = expires.parse().map_err(|_| LinkError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Invalid)?;
        self.mac(method, media_id, variant, expires)
            .verify_slice(&tag)
            .map_err(|_| LinkError::Invalid)?;
        if now.timestamp() >= expires {
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
