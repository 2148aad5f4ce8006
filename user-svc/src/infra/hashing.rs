//! Password hashing: argon2id at or above OWASP's floor (m=19456 KiB, t=2, p=1),
//! verified off the async workers, rehashed on login when the parameters rise.

use crate::error::UserError;
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};

/// The parameters new hashes use.
pub fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A valid hash of nothing, verified against when the email is unknown so both failures cost
/// the same time.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1qDkVNSOkK3YHWCxQtbTKKz6gW+vqXQAOQI1hfySFL0";

/// Hashes on a blocking thread.
pub async fn hash(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(|e| UserError::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

/// The outcome of checking a password.
pub struct Verified {
    pub ok: bool,
    /// The stored hash uses weaker parameters than [`hasher`]: store a new one.
    pub needs_rehash: bool,
}

/// Verifies on a blocking thread; an unparsable hash never verifies.
pub async fn verify(password: String, stored: String) -> Result<Verified, UserError> {
    tokio::task::spawn_blocking(move || {
        let Ok(hash) = PasswordHash::new(&stored) else {
            return Verified {
                ok: false,
                needs_rehash: false,
            };
        };
        let ok = hasher().verify_password(password.as_bytes(), &hash).is_ok();
        let current = hasher();
        let needs_rehash = ok
            && (hash.algorithm != argon2::ARGON2ID_IDENT
                || Params::try_from(&hash).map_or(true, |p| {
                    p.m_cost() < current.params().m_cost()
                        || p.t_cost() < current.params().t_cost()
                        || p.p_cost() < current.params().p_cost()
                }));
        Verified { ok, needs_rehash }
    })
    .await
    .map_err(|e| UserError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[tokio::test]
    async fn weaker_hashes_verify_and_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8_192, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let stored = weak
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        let outcome = verify("correct horse battery".into(), stored)
            .await
            .unwrap();
        assert!(outcome.ok && outcome.needs_rehash);
        let fresh = hash("correct horse battery".into()).await.unwrap();
        let outcome = verify("correct horse battery".into(), fresh).await.unwrap();
        assert!(outcome.ok && !outcome.needs_rehash);
        let wrong = verify("wrong".into(), DUMMY_HASH.into()).await.unwrap();
        assert!(!wrong.ok);
    }
}
