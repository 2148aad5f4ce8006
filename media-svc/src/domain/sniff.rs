//! What a file is, decided from its bytes: its first bytes (magic numbers) name its type, and a
//! scan of all of it finds markup that a browser would run (a polyglot: an image that is also
//! a page). The client's `Content-Type` and the file's extension are not trusted.

/// How many bytes [`sniff`] looks at.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The content type of a file that starts with `head`. `extension` only tells plain text from
/// CSV, which no magic number tells apart.
pub fn sniff(head: &[u8], extension: Option<&str>) -> &'static str {
    let trimmed = trim_text_start(head);
    if trimmed.first() == Some(&b'<') {
        let start = &trimmed[..trimmed.len().min(1024)];
        let has = |needle: &str| {
            start
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        };
        if has("<svg") {
            return "image/svg+xml";
        }
        if [
            "<html",
            "<!doctype html",
            "<script",
            "<head",
            "<body",
            "<iframe",
        ]
        .iter()
        .any(|m| has(m))
        {
            return "text/html";
        }
        if has("<?xml") {
            return "application/xml";
        }
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type();
    }
    if is_text(head) {
        return match extension {
            Some("csv") => "text/csv",
            _ => "text/plain",
        };
    }
    "application/octet-stream"
}

/// The content type an extension claims, for the extensions of the types Taskmesh knows.
pub fn claimed_type(extension: &str) -> Option<&'static str> {
    Some(match extension {
        "png" => "image/png",
        "jpg" | "jpeg" | "jpe" | "jfif" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "text" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "zip" => "application/zip",
        _ => return None,
    })
}

/// Whether the file's extension claims another type than its bytes are (`x.png` that is a
/// PDF). Plain text and CSV count as one.
pub fn contradicts(extension: Option<&str>, sniffed: &str) -> bool {
    let text = |t: &str| t == "text/plain" || t == "text/csv";
    match extension.and_then(claimed_type) {
        Some(claimed) => claimed != sniffed && !(text(claimed) && text(sniffed)),
        None => false,
    }
}

fn trim_text_start(head: &[u8]) -> &[u8] {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    &head[start..]
}

/// UTF-8 (a character cut off at the end of `head` allowed) without NUL or control characters
/// other than tab, line feed, form feed and carriage return.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid
        && !head.is_empty()
        && !head
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
}

/// Markup that runs when a browser renders a file as a page, looked for in every byte of every
/// upload. Each needs a following space, `>` or `/`, so that compressed data (which holds every
/// short byte string somewhere) does not match by chance. (Form feed is HTML whitespace too.)
const MARKERS: &[&str] = &["<script", "<?php", "<html", "<iframe"];
/// Also looked for in text files, which have no random bytes: documents, and the elements that
/// run an event handler (`<img src=x onerror=…>`) or load something without a click.
const TEXT_MARKERS: &[&str] = &[
    "<svg",
    "<!doctype html",
    "<object",
    "<embed",
    "<img",
    "<body",
    "<math",
    "<style",
    "<link",
    "<meta",
    "<base",
    "<form",
    "<input",
    "<details",
    "<video",
    "<audio",
    "<marquee",
];
/// Longest marker plus its following byte.
const WINDOW: usize = 15;

/// Scans a file chunk by chunk for [`MARKERS`], across chunk boundaries.
#[derive(Debug, Default)]
pub struct MarkupScanner {
    text: bool,
    tail: Vec<u8>,
}

impl MarkupScanner {
    pub fn new(text: bool) -> Self {
        Self {
            text,
            tail: Vec::new(),
        }
    }

    /// The first marker found in `chunk` (or across it and the chunk before).
    pub fn feed(&mut self, chunk: &[u8]) -> Option<&'static str> {
        let head = &chunk[..chunk.len().min(WINDOW - 1)];
        let mut joined = std::mem::take(&mut self.tail);
        let from_tail = joined.len();
        joined.extend_from_slice(head);
        if let Some(found) = self.find(&joined, from_tail) {
            return Some(found);
        }
        if let Some(found) = self.find(chunk, chunk.len()) {
            return Some(found);
        }
        let keep = WINDOW - 1;
        self.tail = if chunk.len() >= keep {
            chunk[chunk.len() - keep..].to_vec()
        } else {
            joined[joined.len().saturating_sub(keep)..].to_vec()
        };
        None
    }

    /// A marker starting before `before` in `buf`.
    fn find(&self, buf: &[u8], before: usize) -> Option<&'static str> {
        for at in memchr::memchr_iter(b'<', buf) {
            if at >= before {
                break;
            }
            let rest = &buf[at..];
            let extra: &[&str] = if self.text { TEXT_MARKERS } else { &[] };
            for marker in MARKERS.iter().chain(extra) {
                let n = marker.len();
                if rest.len() > n
                    && rest[..n].eq_ignore_ascii_case(marker.as_bytes())
                    && matches!(rest[n], b' ' | b'\t' | b'\n' | b'\r' | 0x0c | b'>' | b'/')
                {
                    return Some(marker);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(PNG, Some("jpg")), "image/png");
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0", None), "image/jpeg");
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0", None), "image/gif");
        assert_eq!(sniff(b"%PDF-1.7\n", None), "application/pdf");
        assert_eq!(sniff(b"hello, world\n", None), "text/plain");
        assert_eq!(sniff(b"a,b\n1,2\n", Some("csv")), "text/csv");
        assert_eq!(sniff(b"\0\x01\x02binary", None), "application/octet-stream");
        assert_eq!(
            sniff(b"  <?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>", Some("png")),
            "image/svg+xml"
        );
        assert_eq!(sniff(b"<!DOCTYPE html><p>hi", Some("txt")), "text/html");
        assert_eq!(sniff("caf\u{e9}".as_bytes(), None), "text/plain");
        // A character cut off by the end of the head is still text.
        assert_eq!(sniff(&"caf\u{e9}".as_bytes()[..4], None), "text/plain");
    }

    #[test]
    fn an_extension_that_claims_another_type_contradicts() {
        assert!(contradicts(Some("png"), "application/pdf"));
        assert!(!contradicts(Some("jpeg"), "image/jpeg"));
        assert!(!contradicts(Some("csv"), "text/plain"));
        assert!(!contradicts(Some("dat"), "image/png"));
        assert!(!contradicts(None, "image/png"));
    }

    #[test]
    fn markup_is_found_anywhere_even_across_chunks() {
        let mut file = PNG.to_vec();
        file.extend(std::iter::repeat_n(0xAB, 10_000));
        file.extend_from_slice(b"tEXt<SCRIPT>alert(1)</script>");
        file.extend(std::iter::repeat_n(0xCD, 1000));
        for chunk in [1, 3, 7, 14, 15, 64, 10_003, 100_000] {
            let mut scanner = MarkupScanner::new(false);
            let found = file.chunks(chunk).find_map(|c| scanner.feed(c));
            assert_eq!(found, Some("<script"), "chunks of {chunk}");
        }
        let mut scanner = MarkupScanner::new(false);
        assert_eq!(scanner.feed(b"a < b and <scripted> text <svg x"), None);
        let mut text = MarkupScanner::new(true);
        assert_eq!(text.feed(b"notes\n<svg onload=alert(1)>"), Some("<svg"));
        for (file, marker) in [
            (&b"a,b\n1,<img src=x onerror=alert(1)>\n"[..], "<img"),
            (b"<BODY onload=alert(1)>", "<body"),
            (b"x <details open ontoggle=alert(1)>", "<details"),
            (
                b"<meta http-equiv=refresh content=0;url=javascript:alert(1)>",
                "<meta",
            ),
        ] {
            let mut text = MarkupScanner::new(true);
            assert_eq!(
                text.feed(file),
                Some(marker),
                "{}",
                String::from_utf8_lossy(file)
            );
        }
        // Text that only looks like it: kept.
        let mut text = MarkupScanner::new(true);
        assert_eq!(text.feed(b"if a <image and b> c: <imgs>, <metadata>"), None);
    }
}
