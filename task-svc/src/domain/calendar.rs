//! A personal calendar feed (`GET /api/v1/calendar/{secret}.ics`): the secret in its address,
//! and someone's dated tasks as iCalendar (RFC 5545) to-dos. Pure: no I/O.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Random bytes in a feed's secret: 256 bits, 43 characters in its address.
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;

/// Dated tasks a feed carries at most: the latest due first.
pub const MAX_FEED_TASKS: i64 = 2000;

/// A new feed secret, for its address; only its [`hash`] is kept.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is kept of a secret: its SHA-256 (a stolen database names no feed's address).
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The secret in a feed's file name, `<secret>.ics`; `None` when it cannot be one.
pub fn secret_of(file: &str) -> Option<&str> {
    let secret = file.strip_suffix(".ics")?;
    let shaped = secret.len() == SECRET_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then_some(secret)
}

/// A task with a due date, as its feed shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DatedTask {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The feed: a VCALENDAR of one VTODO per task, each linking to its page under `site` (the
/// platform's public address), stamped `now`.
pub fn render(tasks: &[DatedTask], now: DateTime<Utc>, site: &str) -> String {
    let mut feed = String::with_capacity(256 + tasks.len() * 400);
    for line in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Taskmesh//Tasks//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Taskmesh",
    ] {
        push(&mut feed, line);
    }
    let site = site.trim_end_matches('/');
    for task in tasks {
        push(&mut feed, "BEGIN:VTODO");
        push(&mut feed, &format!("UID:{}@taskmesh", task.id));
        push(&mut feed, &format!("DTSTAMP:{}", stamp(now)));
        push(&mut feed, &format!("CREATED:{}", stamp(task.created_at)));
        push(
            &mut feed,
            &format!("LAST-MODIFIED:{}", stamp(task.updated_at)),
        );
        push(&mut feed, &format!("DUE:{}", stamp(task.due_at)));
        push(&mut feed, &format!("SUMMARY:{}", text(&task.title)));
        if !task.description.is_empty() {
            push(
                &mut feed,
                &format!("DESCRIPTION:{}", text(&task.description)),
            );
        }
        push(&mut feed, &format!("STATUS:{}", status(&task.status)));
        push(&mut feed, &format!("PRIORITY:{}", priority(&task.priority)));
        push(&mut feed, &format!("URL:{site}/#/tasks/{}", task.id));
        push(&mut feed, "END:VTODO");
    }
    push(&mut feed, "END:VCALENDAR");
    feed
}

/// A UTC time as iCalendar writes it: `20261207T093000Z`.
fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A TEXT value: backslashes, semicolons, commas and line breaks escaped (RFC 5545 3.3.11).
fn text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\n' => escaped.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => escaped.push(c),
        }
    }
    escaped
}

/// A to-do's STATUS: people's statuses and jobs' states.
fn status(status: &str) -> &'static str {
    match status {
        "done" | "completed" => "COMPLETED",
        "cancelled" | "dead" => "CANCELLED",
        "in_progress" | "running" | "retrying" => "IN-PROCESS",
        _ => "NEEDS-ACTION",
    }
}

/// A PRIORITY: 1 is the highest, 9 the lowest.
fn priority(priority: &str) -> u8 {
    match priority {
        "urgent" => 1,
        "high" => 3,
        "low" => 9,
        _ => 5,
    }
}

/// Appends `line` folded at 75 octets (continuations start with a space, never inside a
/// character) and ended with CRLF (RFC 5545 3.1).
fn push(feed: &mut String, line: &str) {
    let mut room = 75;
    let mut used = 0;
    for c in line.chars() {
        if used + c.len_utf8() > room {
            feed.push_str("\r\n ");
            room = 74;
            used = 0;
        }
        feed.push(c);
        used += c.len_utf8();
    }
    feed.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(title: &str, description: &str) -> DatedTask {
        let at = DateTime::parse_from_rfc3339("2026-12-07T09:30:00Z")
            .unwrap()
            .to_utc();
        DatedTask {
            id: Uuid::nil(),
            title: title.into(),
            description: description.into(),
            status: "in_progress".into(),
            priority: "urgent".into(),
            due_at: at,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_feed_is_a_vcalendar_of_escaped_todos_in_crlf_lines() {
        let now = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z")
            .unwrap()
            .to_utc();
        let feed = render(
            &[task("Pay; then, file \\ done", "line one\nline two")],
            now,
            "https://t.example/",
        );
        let lines: Vec<&str> = feed.split("\r\n").collect();
        assert_eq!(lines.first(), Some(&"BEGIN:VCALENDAR"));
        assert_eq!(lines[lines.len() - 2], "END:VCALENDAR");
        for wanted in [
            "SUMMARY:Pay\\; then\\, file \\\\ done",
            "DESCRIPTION:line one\\nline two",
            "DUE:20261207T093000Z",
            "DTSTAMP:20261208T100000Z",
            "STATUS:IN-PROCESS",
            "PRIORITY:1",
            "URL:https://t.example/#/tasks/00000000-0000-0000-0000-000000000000",
        ] {
            assert!(lines.contains(&wanted), "{wanted} in {feed}");
        }
        assert!(
            !feed.replace("\r\n", "").contains('\n'),
            "every line ends with CRLF"
        );
    }

    #[test]
    fn long_lines_fold_at_75_octets_between_characters() {
        let title = "é".repeat(100); // 2 octets each
        let feed = render(&[task(&title, "")], Utc::now(), "https://t.example");
        let summary: Vec<&str> = feed
            .split("\r\n")
            .skip_while(|l| !l.starts_with("SUMMARY:"))
            .take_while(|l| l.starts_with("SUMMARY:") || l.starts_with(' '))
            .collect();
        assert!(summary.len() > 1);
        assert!(summary.iter().all(|l| l.len() <= 75), "{summary:?}");
        let unfolded: String = summary
            .iter()
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        assert_eq!(unfolded, format!("SUMMARY:{title}"));
    }

    #[test]
    fn only_a_secrets_shape_is_read_from_a_file_name() {
        let secret = new_secret();
        assert_eq!(secret_of(&format!("{secret}.ics")), Some(secret.as_str()));
        assert_eq!(secret_of(&secret), None);
        assert_eq!(secret_of("short.ics"), None);
        assert_eq!(secret_of(&format!("{}.ics", "a/".repeat(22))), None);
        assert_ne!(hash(&secret), hash(&new_secret()));
    }
}
