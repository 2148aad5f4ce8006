//! HMAC-SHA256 under a key only one service holds, for links that work without logging in
//! (media-svc's download links, notify-svc's unsubscribe links) and webhook signatures. Tags are
//! compared in constant time; the key never shows in logs.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A MAC key.
#[derive(Clone)]
pub struct MacKey(Vec<u8>);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(***)")
    }
}

impl MacKey {
    pub fn new(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// A key of its own for `purpose`, derived from `secret` (HMAC of the purpose under it), so
    /// that one secret can key several uses without a tag of one passing for another.
    pub fn derived(secret: &[u8], purpose: &str) -> Self {
        Self(MacKey(secret.to_vec()).tag(&[purpose.as_bytes()]).to_vec())
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part);
        }
        mac
    }

    /// The tag of `parts`, one after the other.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.mac(parts).finalize().into_bytes().into()
    }

    /// [`MacKey::tag`] as URL-safe base64 without padding.
    pub fn tag_b64(&self, parts: &[&[u8]]) -> String {
        URL_SAFE_NO_PAD.encode(self.tag(parts))
    }

    /// Whether `tag` is the tag of `parts` (compared in constant time).
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac(parts).verify_slice(tag).is_ok()
    }

    /// [`MacKey::verify`] of a tag in URL-safe base64 without padding.
    pub fn verify_b64(&self, parts: &[&[u8]], tag: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|tag| self.verify(parts, &tag))
    }
}

/// `fields`, each followed by a newline (a byte none of them may hold), as MAC parts.
pub fn lines<'a>(fields: &[&'a str]) -> Vec<&'a [u8]> {
    fields
        .iter()
        .flat_map(|field| [field.as_bytes(), b"\n".as_slice()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_for_its_parts_and_key() {
        let key = MacKey::new(b"k".to_vec());
        let tag = key.tag_b64(&lines(&["a", "b"]));
        assert!(key.verify_b64(&lines(&["a", "b"]), &tag));
        assert!(!key.verify_b64(&lines(&["a", "c"]), &tag));
        assert!(!key.verify_b64(&lines(&["ab"]), &tag), "fields are framed");
        assert!(!MacKey::new(b"other".to_vec()).verify_b64(&lines(&["a", "b"]), &tag));
        assert!(!key.verify_b64(&lines(&["a", "b"]), "not base64!"));
        assert_eq!(format!("{key:?}"), "MacKey(***)");
    }
}
