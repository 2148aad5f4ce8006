//! Sealing: authenticated encryption (XChaCha20-Poly1305 with a random 192-bit nonce per
//! message) for what must be kept where others can read it. A sealed value is the nonce followed
//! by the ciphertext and its tag; opening it with another key, or after any change, fails.

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    XChaCha20Poly1305, XNonce,
};

use crate::signing::MacKey;

/// The nonce's length, at the start of a sealed value.
const NONCE_BYTES: usize = 24;

/// A 256-bit sealing key.
#[derive(Clone)]
pub struct SealKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(***)")
    }
}

impl SealKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(&key.into()))
    }

    /// A key for one `context` (its parts, MAC'd in order) under `master`: each context seals
    /// with a key of its own.
    pub fn derived(master: &MacKey, context: &[&[u8]]) -> Self {
        Self::new(master.tag(context))
    }

    /// `plaintext`, sealed.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = (self.0)
            .encrypt(&nonce, plaintext)
            .expect("XChaCha20-Poly1305 seals any length a process holds");
        [nonce.as_slice(), &sealed].concat()
    }

    /// What `sealed` holds, if it was sealed with this key and is unchanged.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.0.decrypt(XNonce::from_slice(nonce), ciphertext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_unchanged() {
        let master = MacKey::new(b"master".to_vec());
        let key = SealKey::derived(&master, &[b"a"]);
        let sealed = key.seal(b"whsec_secret");
        assert!(!sealed.windows(5).any(|w| w == b"whsec"));
        assert_eq!(key.open(&sealed).as_deref(), Some(&b"whsec_secret"[..]));
        assert_ne!(key.seal(b"whsec_secret"), sealed, "a fresh nonce each time");
        assert!(SealKey::derived(&master, &[b"b"]).open(&sealed).is_none());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(key.open(&changed).is_none());
        assert!(key.open(b"short").is_none());
        assert_eq!(format!("{key:?}"), "SealKey(***)");
    }
}
