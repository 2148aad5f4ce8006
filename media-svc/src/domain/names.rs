//! File names as people give them: kept for display and downloads, never used as a storage key.

/// Extensions that make a file run, render as a page or execute in a browser or server when
/// served under that name; refused anywhere in a name (`report.php.jpg`, `photo.jpg.php`).
const DANGEROUS: &[&str] = &[
    "php", "php3", "php4", "php5", "php7", "phtml", "phar", "pht", "asp", "aspx", "ashx", "jsp",
    "jspx", "cgi", "pl", "py", "rb", "sh", "bash", "bat", "cmd", "com", "exe", "dll", "msi", "scr",
    "ps1", "vbs", "vbe", "js", "mjs", "jse", "wsf", "hta", "jar", "html", "htm", "xhtml", "shtml",
    "svg", "svgz", "xml", "xsl", "swf", "htaccess", "lnk", "reg", "xht", "xhtm", "mht", "mhtml",
    "url", "webloc", "desktop", "chm",
];

/// Longest name kept, in bytes (most file systems' limit).
pub const MAX_NAME_BYTES: usize = 255;

/// A file name that is safe to show and to offer for download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the file has no name")]
    Empty,
    #[error("file names are limited to {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("file names must not contain NUL or other control characters")]
    Control,
    #[error("file names must not contain path separators (/ or \\)")]
    Separator,
    #[error("file names must not be . or .., nor end with a dot or a space")]
    Dots,
    #[error(
        "file names must not contain direction-changing characters, which disguise extensions"
    )]
    Bidi,
    #[error("file names must not contain invisible characters (zero-width spaces, joiners next to a dot or a space, soft hyphens), which disguise names")]
    Invisible,
    #[error("the extension .{0} is not accepted anywhere in a file name")]
    Dangerous(String),
}

/// Characters that show as nothing: a name holding one can pass for another name, or hide its
/// extension (`photo.jpg\u{200B}.exe`).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// Zero-width joiners and non-joiners belong inside words (Persian, Indic scripts, emoji
/// sequences); at a name's ends or next to a dot or a space they only hide something.
fn stray_joiner(raw: &str) -> bool {
    let chars: Vec<char> = raw.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        matches!(c, '\u{200C}' | '\u{200D}') && {
            let edge = |n: Option<&char>| {
                n.is_none_or(|n| matches!(n, '.' | ' ' | '\u{200C}' | '\u{200D}'))
            };
            edge(i.checked_sub(1).and_then(|p| chars.get(p))) || edge(chars.get(i + 1))
        }
    })
}

impl FileName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(NameError::Control);
        }
        if raw.contains(['/', '\\']) {
            return Err(NameError::Separator);
        }
        // U+202A..U+202E, U+2066..U+2069 and the marks: "invoice\u{202E}gpj.exe" shows as
        // "invoiceexe.jpg".
        if raw.chars().any(|c| {
            matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        }) {
            return Err(NameError::Bidi);
        }
        if raw.chars().any(invisible) || stray_joiner(raw) {
            return Err(NameError::Invisible);
        }
        if raw == "." || raw == ".." || raw.ends_with(['.', ' ']) || raw.trim().is_empty() {
            return Err(NameError::Dots);
        }
        for part in raw.split('.').skip(1) {
            let part = part.trim().to_ascii_lowercase();
            if DANGEROUS.contains(&part.as_str()) {
                return Err(NameError::Dangerous(part));
            }
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last extension, lower-cased (`"jpg"` of `Photo.JPG`).
    pub fn extension(&self) -> Option<String> {
        let (stem, ext) = self.0.rsplit_once('.')?;
        (!stem.is_empty()).then(|| ext.to_ascii_lowercase())
    }

    /// `Content-Disposition: attachment` for this name: an ASCII fallback with anything unsafe
    /// replaced by `_`, and the exact name in RFC 5987 `filename*`.
    pub fn content_disposition(&self) -> String {
        let fallback: String = self
            .0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::new();
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_kept() {
        for name in [
            "photo.jpg",
            "Quarterly report (final).pdf",
            "notes",
            "été 2026.png",
            ".env.txt",
            // Joiners inside words: Persian, and an emoji sequence.
            "می\u{200C}خواهم.pdf",
            "team \u{1F468}\u{200D}\u{1F469}.png",
        ] {
            assert_eq!(FileName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn hostile_names_are_refused_with_their_reason() {
        assert_eq!(FileName::parse(""), Err(NameError::Empty));
        assert_eq!(FileName::parse("a\0.png"), Err(NameError::Control));
        assert_eq!(FileName::parse("a\n.png"), Err(NameError::Control));
        assert_eq!(FileName::parse("../etc/passwd"), Err(NameError::Separator));
        assert_eq!(FileName::parse("..\\boot.ini"), Err(NameError::Separator));
        assert_eq!(FileName::parse(".."), Err(NameError::Dots));
        assert_eq!(FileName::parse("shell.php."), Err(NameError::Dots));
        assert_eq!(FileName::parse("x\u{202E}gpj.exe"), Err(NameError::Bidi));
        assert_eq!(
            FileName::parse("photo.jpg.php"),
            Err(NameError::Dangerous("php".into()))
        );
        assert_eq!(
            FileName::parse("photo.PHP.jpg"),
            Err(NameError::Dangerous("php".into()))
        );
        assert_eq!(
            FileName::parse("page.html"),
            Err(NameError::Dangerous("html".into()))
        );
        assert_eq!(FileName::parse(&"a".repeat(256)), Err(NameError::TooLong));
        for name in [
            "photo.jpg\u{200B}.pdf",
            "re\u{200B}port.pdf",
            "\u{FEFF}report.pdf",
            "report\u{2060}.pdf",
            "report.p\u{00AD}df",
            "report.\u{200D}pdf",
            "report\u{200C}.pdf",
            "\u{200D}report.pdf",
        ] {
            assert_eq!(FileName::parse(name), Err(NameError::Invisible), "{name:?}");
        }
        for (name, ext) in [
            ("shortcut.url", "url"),
            ("page.xht", "xht"),
            ("a.MHTML", "mhtml"),
        ] {
            assert_eq!(FileName::parse(name), Err(NameError::Dangerous(ext.into())));
        }
    }

    #[test]
    fn the_download_name_is_quoted_safely() {
        let name = FileName::parse("résumé \"v2\";.pdf").unwrap();
        let header = name.content_disposition();
        assert!(
            header.starts_with("attachment; filename=\"r_sum_ _v2__.pdf\""),
            "{header}"
        );
        assert!(
            header.ends_with("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22%3B.pdf"),
            "{header}"
        );
        assert_eq!(name.extension().as_deref(), Some("pdf"));
    }
}
