//! Password policy and hashing: argon2id at or above OWASP's floor (m=19456 KiB, t=2, p=1),
//! verified off the async workers, rehashed on login when the parameters rise.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use shared::ApiError;

/// The parameters new hashes use.
pub fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A valid hash of nothing, verified against when the email is unknown so both failures cost
/// the same time.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1qDkVNSOkK3YHWCxQtbTKKz6gW+vqXQAOQI1hfySFL0";

/// Passwords too common to allow, whatever their length (lowercase).
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789012",
    "0123456789",
    "1111111111",
    "0000000000",
    "1234512345",
    "1122334455",
    "9876543210",
    "qwertyuiop",
    "qwertyuiop123",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "zaq12wsxcde3",
    "asdfghjkl1",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "p@ssw0rd123",
    "iloveyou123",
    "letmein123",
    "welcome123",
    "welcome1234",
    "football123",
    "baseball123",
    "superman123",
    "princess123",
    "sunshine123",
    "trustno1234",
    "administrator",
    "changeme123",
    "qwerty12345",
    "qwerty123456",
    "abc1234567",
    "abcdefghij",
    "aaaaaaaaaa",
    "correcthorsebatterystaple",
    "starwars123",
    "dragon12345",
    "monkey12345",
    "mustang1234",
    "shadow12345",
    "master12345",
    "michael1234",
    "jennifer123",
    "computer123",
    "internet123",
    "taskmesh123",
    "taskmesh1234",
    "secret1234",
    "whatever123",
    "freedom123",
];

/// Length 10 to 256, not the email, not a common password.
pub fn check_policy(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |detail: &str| ApiError::unprocessable("weak_password", detail.to_string());
    let length = password.chars().count();
    if !(10..=256).contains(&length) {
        return Err(weak("password must be 10 to 256 characters long"));
    }
    let lower = password.to_lowercase();
    if lower == email.to_lowercase()
        || lower == email.split('@').next().unwrap_or("").to_lowercase()
    {
        return Err(weak("password must not be the email address"));
    }
    if COMMON.contains(&lower.as_str()) {
        return Err(weak("this password is too common; choose another"));
    }
    Ok(())
}

/// Hashes on a blocking thread.
pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing a password: {e}")))
}

/// The outcome of checking a password.
pub struct Verified {
    pub ok: bool,
    /// The stored hash uses weaker parameters than [`hasher`]: store a new one.
    pub needs_rehash: bool,
}

/// Verifies on a blocking thread; an unparsable hash never verifies.
pub async fn verify(password: String, stored: String) -> Result<Verified, ApiError> {
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
    .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_needs_ten_characters_not_the_email_and_not_common() {
        assert!(check_policy("short", "a@b.c").is_err());
        assert!(check_policy("ada@example.com", "ADA@example.com").is_err());
        assert!(check_policy("Password123", "a@b.c").is_err());
        assert!(check_policy("correct horse battery", "a@b.c").is_ok());
    }

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
