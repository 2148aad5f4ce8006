//! Sealing: authenticated encryption (XChaCha20-Poly1305 with a random 192-bit nonce per
//! message) for what must be kept where others can read it. A sealed value is the nonce followed
//! by the ciphertext and its tag; opening it with another key, or after any change, fails.

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    XChaCha20Poly1305, XNonce,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use secrecy::ExposeSecret;

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

/// The first field of a value sealed at rest: the format and its version.
const AT_REST: &str = "tmseal1";

/// The keys that seal secrets kept in a database (envelope encryption): each value is sealed
/// under a fresh data key of its own, and that data key under a key-encryption key from the
/// config. A sealed value reads `tmseal1.<key id>.<wrapped data key>.<sealed value>`, so a
/// rotation re-wraps 32-byte data keys, never the values, and says which key to open with.
#[derive(Clone, Debug)]
pub struct AtRest {
    /// The key that seals first, then those that only open.
    keys: Vec<(String, SealKey)>,
}

/// Why a stored value does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsealable {
    #[error("the value is not sealed")]
    NotSealed,
    #[error("the value was sealed under key {0}, which this service does not hold (sealing.key, sealing.previous_key)")]
    UnknownKey(String),
    #[error("the sealed value is damaged or was sealed under another key")]
    Damaged,
}

impl AtRest {
    /// Seals under `current`; opens what `current` or any of `others` sealed.
    pub fn new(current: &[u8], others: &[&[u8]]) -> Self {
        let mut keys = vec![Self::key(current)];
        for other in others {
            let key = Self::key(other);
            if keys.iter().all(|(id, _)| *id != key.0) {
                keys.push(key);
            }
        }
        Self { keys }
    }

    /// The keys of `config`: `sealing.key` seals, or without it a key derived from
    /// `internal.secret`; `sealing.previous_key` and the keys derived from both internal
    /// secrets also open (values sealed before `sealing.key` was set, or before a rotation).
    pub fn from_config(config: &crate::Config) -> Result<Self, crate::internal::MissingSecret> {
        let derived = |secret: &Option<secrecy::SecretString>| {
            secret
                .as_ref()
                .map(|s| MacKey::derived(s.expose_secret().as_bytes(), "taskmesh sealing").tag(&[]))
        };
        let from_internal = derived(&config.internal.secret);
        let others: Vec<Vec<u8>> = [
            config
                .sealing
                .previous_key
                .as_ref()
                .map(|k| k.expose_secret().as_bytes().to_vec()),
            from_internal.map(|k| k.to_vec()),
            derived(&config.internal.accepted_secret).map(|k| k.to_vec()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let others: Vec<&[u8]> = others.iter().map(Vec::as_slice).collect();
        match (&config.sealing.key, from_internal) {
            (Some(key), _) => Ok(Self::new(key.expose_secret().as_bytes(), &others)),
            (None, Some(key)) => Ok(Self::new(&key, &others)),
            (None, None) => Err(crate::internal::MissingSecret),
        }
    }

    fn key(secret: &[u8]) -> (String, SealKey) {
        let master = MacKey::new(secret.to_vec());
        let id = hex::encode(&master.tag(&[b"taskmesh sealing key id"])[..6]);
        (id, SealKey::derived(&master, &[b"taskmesh sealing key"]))
    }

    /// `plaintext`, sealed under a fresh data key wrapped by the current key.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        use rand::RngCore;
        let mut data_key = [0u8; 32];
        OsRng.fill_bytes(&mut data_key);
        let (id, key) = &self.keys[0];
        let value = SealKey::new(data_key).seal(plaintext);
        format!(
            "{AT_REST}.{id}.{}.{}",
            URL_SAFE_NO_PAD.encode(key.seal(&data_key)),
            URL_SAFE_NO_PAD.encode(value)
        )
    }

    /// The parts of a sealed value: its key's id, wrapped data key and sealed value.
    fn parts(sealed: &str) -> Result<(&str, Vec<u8>, &str), Unsealable> {
        let mut parts = sealed.split('.');
        if parts.next() != Some(AT_REST) {
            return Err(Unsealable::NotSealed);
        }
        let (Some(id), Some(wrapped), Some(value), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Unsealable::Damaged);
        };
        let wrapped = URL_SAFE_NO_PAD
            .decode(wrapped)
            .map_err(|_| Unsealable::Damaged)?;
        Ok((id, wrapped, value))
    }

    fn data_key(&self, id: &str, wrapped: &[u8]) -> Result<[u8; 32], Unsealable> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .ok_or_else(|| Unsealable::UnknownKey(id.to_string()))?;
        key.open(wrapped)
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(Unsealable::Damaged)
    }

    /// What `sealed` holds.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, Unsealable> {
        let (id, wrapped, value) = Self::parts(sealed)?;
        let data_key = self.data_key(id, &wrapped)?;
        let value = URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| Unsealable::Damaged)?;
        SealKey::new(data_key)
            .open(&value)
            .ok_or(Unsealable::Damaged)
    }

    /// [`AtRest::open`] of a text.
    pub fn open_text(&self, sealed: &str) -> Result<String, Unsealable> {
        String::from_utf8(self.open(sealed)?).map_err(|_| Unsealable::Damaged)
    }

    /// [`AtRest::open_text`], or `stored` itself when it is not sealed at all: a value a pod of
    /// an earlier version wrote in the clear during an upgrade (sealed at the next start).
    pub fn open_text_or_clear(&self, stored: &str) -> Result<String, Unsealable> {
        match self.open_text(stored) {
            Err(Unsealable::NotSealed) => Ok(stored.to_string()),
            other => other,
        }
    }

    /// `stored` as it should be kept: `None` when it is sealed under the current key already;
    /// a value sealed under another key held here gets its data key re-wrapped (the value is
    /// not touched); a value not sealed at all (kept before sealing existed) is sealed.
    pub fn reseal(&self, stored: &str) -> Result<Option<String>, Unsealable> {
        match Self::parts(stored) {
            Err(Unsealable::NotSealed) => Ok(Some(self.seal(stored.as_bytes()))),
            Err(err) => Err(err),
            Ok((id, _, _)) if id == self.keys[0].0 => Ok(None),
            Ok((id, wrapped, value)) => {
                let data_key = self.data_key(id, &wrapped)?;
                let (current, key) = &self.keys[0];
                Ok(Some(format!(
                    "{AT_REST}.{current}.{}.{value}",
                    URL_SAFE_NO_PAD.encode(key.seal(&data_key))
                )))
            }
        }
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

    #[test]
    fn a_value_sealed_at_rest_opens_after_a_rotation_and_never_shows() {
        let old = AtRest::new(b"old key of at least thirty-two bytes", &[]);
        let sealed = old.seal(b"whsec_abc");
        assert!(sealed.starts_with("tmseal1."));
        assert!(!sealed.contains("whsec"));
        assert_eq!(old.open_text(&sealed).unwrap(), "whsec_abc");
        assert_ne!(old.seal(b"whsec_abc"), sealed, "a fresh data key each time");
        // Rotated: the new key seals, the old one still opens, and a re-seal re-wraps.
        let new = AtRest::new(
            b"new key of at least thirty-two bytes",
            &[b"old key of at least thirty-two bytes"],
        );
        assert_eq!(new.open_text(&sealed).unwrap(), "whsec_abc");
        let resealed = new.reseal(&sealed).unwrap().expect("under the old key");
        assert_eq!(
            resealed.rsplit('.').next(),
            sealed.rsplit('.').next(),
            "the value untouched"
        );
        assert_eq!(new.reseal(&resealed).unwrap(), None);
        let only_new = AtRest::new(b"new key of at least thirty-two bytes", &[]);
        assert_eq!(only_new.open_text(&resealed).unwrap(), "whsec_abc");
        assert!(matches!(
            only_new.open(&sealed),
            Err(Unsealable::UnknownKey(_))
        ));
        // A value kept before sealing is sealed by a re-seal; damage is refused.
        let plain = new.reseal("whsec_plain").unwrap().unwrap();
        assert_eq!(new.open_text(&plain).unwrap(), "whsec_plain");
        assert_eq!(new.open("whsec_plain"), Err(Unsealable::NotSealed));
        assert_eq!(
            new.open_text_or_clear("whsec_plain").unwrap(),
            "whsec_plain"
        );
        assert_eq!(new.open_text_or_clear(&plain).unwrap(), "whsec_plain");
        let mut damaged = resealed.clone();
        damaged.pop();
        assert_eq!(new.open(&damaged), Err(Unsealable::Damaged));
    }
}
