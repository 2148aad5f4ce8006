//! The bench's sinks: a minimal SMTP responder on tokio and an axum HTTP server answering 204,
//! each recording what arrived and when.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What a sink saw: each arrival's time and, for Taskmesh's, the batch its title names.
#[derive(Default)]
pub(super) struct Arrivals {
    pub(super) times: Vec<(Instant, Option<usize>)>,
    /// Duplicates (a second arrival of a Message-ID or webhook-id) are not counted again.
    pub(super) ids: HashSet<String>,
    pub(super) duplicates: usize,
    pub(super) connections: usize,
    pub(super) open: usize,
    pub(super) max_open: usize,
    pub(super) noops: usize,
    pub(super) bytes: usize,
}

pub(super) struct Stats {
    pub(super) connections: usize,
    pub(super) max_open: usize,
    pub(super) noops: usize,
    pub(super) bytes: f64,
    pub(super) long_gaps: usize,
    pub(super) longest_gap_ms: f64,
}

impl Arrivals {
    pub(super) fn reset(&mut self) {
        *self = Self {
            open: self.open,
            ..Self::default()
        };
    }

    pub(super) fn record(&mut self, id: Option<String>, batch: Option<usize>, bytes: usize) {
        if let Some(id) = id {
            if !self.ids.insert(id) {
                self.duplicates += 1;
                return;
            }
        }
        self.bytes += bytes;
        self.times.push((Instant::now(), batch));
    }

    pub(super) fn stats(&self) -> Stats {
        let mut times: Vec<Instant> = self.times.iter().map(|t| t.0).collect();
        times.sort();
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).as_secs_f64() * 1000.0)
            .collect();
        Stats {
            connections: self.connections,
            max_open: self.max_open,
            noops: self.noops,
            bytes: self.bytes as f64 / self.times.len().max(1) as f64,
            long_gaps: gaps.iter().filter(|g| **g >= 150.0).count(),
            longest_gap_ms: gaps.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// `nb<batch>.` in a title.
pub(super) fn batch_of(text: &str) -> Option<usize> {
    let at = text.find("nb")?;
    let digits: String = text[at + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    text[at + 2 + digits.len()..]
        .starts_with('.')
        .then(|| digits.parse().ok())
        .flatten()
}

/// A Subject header's text: RFC 2047 encoded words (B and Q) decoded, whitespace dropped.
pub(super) fn decode_subject(raw: &str) -> String {
    let mut out = Vec::new();
    for word in raw.split_whitespace() {
        let parts: Vec<&str> = word.split('?').collect();
        if parts.len() == 5 && parts[0] == "=" && parts[4] == "=" {
            match parts[2] {
                "b" | "B" => {
                    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(parts[3]) {
                        out.extend(bytes);
                    }
                }
                _ => {
                    let text = parts[3].as_bytes();
                    let mut i = 0;
                    while i < text.len() {
                        match text[i] {
                            b'_' => out.push(b' '),
                            b'=' if i + 2 < text.len() => {
                                let hex = std::str::from_utf8(&text[i + 1..i + 3]).unwrap_or("");
                                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                                i += 2;
                            }
                            b => out.push(b),
                        }
                        i += 1;
                    }
                }
            }
        } else {
            out.extend_from_slice(word.as_bytes());
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) struct SmtpSink {
    pub(super) port: u16,
    pub(super) log: Arc<Mutex<Arrivals>>,
}

impl SmtpSink {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let log: Arc<Mutex<Arrivals>> = Arc::default();
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = shared.clone();
                tokio::spawn(async move {
                    {
                        let mut log = log.lock().unwrap();
                        log.connections += 1;
                        log.open += 1;
                        log.max_open = log.max_open.max(log.open);
                    }
                    let _ = smtp_session(stream, &log).await;
                    let mut log = log.lock().unwrap();
                    log.open = log.open.saturating_sub(1);
                });
            }
        });
        Ok(Self { port, log })
    }
}

pub(super) async fn smtp_session(stream: TcpStream, log: &Mutex<Arrivals>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 bench-sink ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line
            .get(..4)
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default();
        match verb.as_slice() {
            b"EHLO" => {
                writer
                    .write_all(b"250-bench-sink\r\n250 8BITMIME\r\n")
                    .await?
            }
            b"DATA" => {
                writer.write_all(b"354 end with .\r\n").await?;
                let (mut bytes, mut in_headers, mut subject, mut message_id) =
                    (0, true, None::<String>, None);
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    bytes += line.len();
                    if !in_headers {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if text.trim().is_empty() {
                        in_headers = false;
                    } else if text.starts_with([' ', '\t']) {
                        if let Some(s) = subject.as_mut().filter(|s| !s.ends_with('\u{0}')) {
                            s.push(' ');
                            s.push_str(text.trim());
                        }
                    } else {
                        // A header other than Subject ends the Subject's continuation lines.
                        if let Some(s) = subject.as_mut().filter(|s| !s.ends_with('\u{0}')) {
                            s.push('\u{0}');
                        }
                        let lower = text.to_ascii_lowercase();
                        if lower.starts_with("subject:") {
                            subject = Some(text[8..].trim().to_string());
                        } else if lower.starts_with("message-id:") {
                            message_id = Some(text[11..].trim().to_string());
                        }
                    }
                }
                let batch = subject
                    .map(|s| decode_subject(s.trim_end_matches('\u{0}')))
                    .and_then(|s| batch_of(&s));
                log.lock().unwrap().record(message_id, batch, bytes);
                writer.write_all(b"250 OK queued\r\n").await?;
            }
            b"QUIT" => {
                writer.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            b"NOOP" => {
                log.lock().unwrap().noops += 1;
                writer.write_all(b"250 OK\r\n").await?;
            }
            _ => writer.write_all(b"250 OK\r\n").await?,
        }
    }
}

pub(super) struct HttpSink {
    pub(super) port: u16,
    pub(super) log: Arc<Mutex<Arrivals>>,
}

impl HttpSink {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let log: Arc<Mutex<Arrivals>> = Arc::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(log.clone());
        let counted = log.clone();
        // Count connections: accept them here and hand each to hyper through axum's serve.
        let listener = CountingListener {
            inner: listener,
            log: counted,
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { port, log })
    }
}

pub(super) async fn hook(
    State(log): State<Arc<Mutex<Arrivals>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let batch = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["title"].as_str().and_then(batch_of));
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    log.lock().unwrap().record(id, batch, body.len());
    StatusCode::NO_CONTENT
}

pub(super) struct CountingListener {
    pub(super) inner: TcpListener,
    pub(super) log: Arc<Mutex<Arrivals>>,
}

impl axum::serve::Listener for CountingListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = axum::serve::Listener::accept(&mut self.inner).await;
        self.log.lock().unwrap().connections += 1;
        accepted
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folded_encoded_subject_names_its_batch() {
        let subject = "=?utf-8?b?QWRhIGFzc2lnbmVkIHlvdSDigJxuYg==?=\t=?utf-8?b?MTIuNOKAnQ==?=";
        assert_eq!(batch_of(&decode_subject(subject)), Some(12));
        assert_eq!(batch_of("Ada assigned you “nb3.1500”"), Some(3));
        assert_eq!(batch_of("welcome"), None);
        assert_eq!(decode_subject("=?utf-8?q?nb7=2E1_x?="), "nb7.1 x");
    }
}
