//! The one rule for short texts people type (titles, names, tags, descriptions): trimmed, at
//! most so many characters, and no control characters (newlines and tabs only where a text may
//! span lines). Each caller turns a refusal into its own error code and message.

/// `raw` trimmed, if it is 1 to `max` characters with no control character at all.
pub fn one_line(raw: &str, max: usize) -> Option<&str> {
    let text = raw.trim();
    let fits = !text.is_empty() && text.chars().count() <= max;
    (fits && !text.chars().any(char::is_control)).then_some(text)
}

/// `raw` trimmed, if it is at most `max` characters (empty allowed) and its only control
/// characters are newlines and tabs.
pub fn lines(raw: &str, max: usize) -> Option<&str> {
    let text = raw.trim();
    let printable = !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t');
    (text.chars().count() <= max && printable).then_some(text)
}

/// `text` for a SQL `LIKE` pattern, matched literally: `\\`, `%` and `_` escaped (PostgreSQL's
/// default escape character).
pub fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_their_text_literally() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn one_line_texts_are_trimmed_bounded_and_printable() {
        assert_eq!(one_line("  Ada  ", 3), Some("Ada"));
        assert_eq!(one_line("Ådä", 3), Some("Ådä"), "characters, not bytes");
        for bad in ["", "   ", "Adam", "a\nb", "a\u{7}"] {
            assert_eq!(one_line(bad, 3), None, "{bad:?}");
        }
    }

    #[test]
    fn texts_of_lines_keep_newlines_and_tabs_only() {
        assert_eq!(lines(" a\n\tb ", 10), Some("a\n\tb"));
        assert_eq!(lines("", 10), Some(""));
        assert_eq!(lines("a\u{1b}[31m", 10), None);
        assert_eq!(lines("abc", 2), None);
    }
}
