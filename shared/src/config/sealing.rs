//! The keys that seal secrets kept in the databases (webhook secrets, link-signing keys, the
//! access tokens' signing keys): `shared::seal::AtRest`.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealingConfig {
    /// The key that seals (at least 32 bytes; `openssl rand -base64 32`). Only user-svc,
    /// notify-svc and media-svc need it. Unset, they seal under a key derived from
    /// `internal.secret`, which every service holds; `taskmesh up` keeps one in
    /// `.taskmesh/sealing.key` instead.
    pub key: Option<SecretString>,
    /// A key that still opens what it sealed, never used to seal: for a rotation (set the new
    /// key, move the old one here; each service re-seals what it keeps at start; then remove
    /// it).
    pub previous_key: Option<SecretString>,
}
