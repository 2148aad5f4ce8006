//! Endpoint secrets and delivery signatures, as Standard Webhooks specifies: a secret is
//! `whsec_` + base64 of random bytes; a signature is `v1,` + base64 of
//! HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}") with the decoded key.

use base64::{engine::general_purpose::STANDARD, Engine};
use rand::RngCore;
use shared::signing::MacKey;

const PREFIX: &str = "whsec_";
/// 32 bytes: the spec asks for 24 to 64.
const KEY_BYTES: usize = 32;

/// An endpoint's signing secret. Never printed: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Secret(format!("{PREFIX}{}", STANDARD.encode(key)))
    }

    /// The secret as its owner sees it (answers of create and rotate, and the database).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the decoded part after `whsec_`.
    fn key(&self) -> Vec<u8> {
        let encoded = self.0.strip_prefix(PREFIX).unwrap_or(&self.0);
        // Every stored secret was made by `generate`; a hand-made one that is not base64 signs
        // with its raw bytes rather than not at all.
        STANDARD
            .decode(encoded)
            .unwrap_or_else(|_| encoded.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One signature, `v1,<base64>`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let parts = [msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    let tag = MacKey::new(secret.key()).tag(&parts);
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header: one signature per secret, space separated (the current one
/// and, during a rotation's overlap, the previous one).
pub fn signature_header(secrets: &[&Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `webhook-id` of a delivery: the same on every retry and redelivery.
pub fn message_id(delivery_id: uuid::Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let secret = Secret::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_prefixed_random_and_hidden_from_debug() {
        let (a, b) = (Secret::generate(), Secret::generate());
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_"));
        assert_eq!(a.key().len(), KEY_BYTES);
        assert_eq!(format!("{a:?}"), "Secret(***)");
    }

    #[test]
    fn the_header_carries_one_signature_per_secret() {
        let (a, b) = (Secret::generate(), Secret::generate());
        let header = signature_header(&[&a, &b], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&a, "msg_1", 1, b"{}"), sign(&b, "msg_1", 1, b"{}")]
        );
    }
}
