//! The password policy: 10 to 256 characters, not the email, not a common password.

use crate::error::UserError;

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
pub fn check_policy(password: &str, email: &str) -> Result<(), UserError> {
    let weak = |detail: &str| UserError::invalid("weak_password", detail);
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
}
