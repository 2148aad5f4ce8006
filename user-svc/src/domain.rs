//! The rules an account's fields follow. Pure: no I/O.

use shared::ApiError;

/// A parsed e-mail address: trimmed, at most 254 characters, one `@` with text on both sides.
pub fn parse_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim();
    let valid = email.len() <= 254
        && email.split('@').count() == 2
        && email.split('@').all(|part| !part.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email.to_string())
    } else {
        Err(ApiError::unprocessable(
            "invalid_email",
            "email must be an address like name@example.com",
        ))
    }
}

/// 1 to 100 printable characters, trimmed.
pub fn parse_display_name(raw: &str) -> Result<String, ApiError> {
    shared::text::one_line(raw, 100)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_display_name",
                "display_name must be 1 to 100 printable characters",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(
            parse_email("  ada@example.com ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "a da@example.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} accepted");
        }
    }
}
