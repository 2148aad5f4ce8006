//! The SMTP server notify-svc mails through: the project's aiosmtpd sink
//! (`tests/notify/smtp_sink.py`, see `tests/notify/README.md`) as a child process on a fixed
//! port, reached through the `notify-svc→smtp` fault proxy. It stores each accepted mail as one
//! `.eml` file (renamed into place before its `250`); the suite reads their `Message-ID`s.
//!
//! The sink can be killed (`kill -9`: the `smtp:down` fault) and started again on the same port,
//! also with `--reject-first N` (it answers `451` to the end of DATA of the next N mails: the
//! `smtp:451` fault).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The script, in this repository.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/notify/smtp_sink.py")
}

/// The Message-ID's UUID and the time of each `.eml` file, by file name.
type Seen = HashMap<String, (Option<Uuid>, SystemTime)>;

pub struct SmtpSink {
    python: PathBuf,
    pub dir: PathBuf,
    log: PathBuf,
    /// 0 until the first start picked a free port.
    port: u16,
    child: Option<Child>,
    /// Message-ID (its UUID part) and time of each `.eml` file read so far, by file name.
    seen: Arc<Mutex<Seen>>,
}

impl SmtpSink {
    /// Starts the sink on a free port, storing mail in `dir`.
    pub async fn start(python: &Path, dir: &Path, log: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut sink = Self {
            python: python.to_path_buf(),
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
            port: 0,
            child: None,
            seen: Arc::default(),
        };
        sink.spawn(0).await?;
        Ok(sink)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the sink (on its port once it has one), answering `451` to the first
    /// `reject_first` mails; waits for its `ready <port>` line.
    pub async fn spawn(&mut self, reject_first: u32) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the SMTP sink is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(&self.python)
            .arg(script())
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .args(["--reject-first", &reject_first.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting the SMTP sink with {} (scripts/python-env makes the venv)",
                    self.python.display()
                )
            })?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the SMTP sink did not say `ready` within 30 s")??
            .context("the SMTP sink exited before it was ready (see logs/smtp-sink.log)")?;
        let port: u16 = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("the SMTP sink said {line:?}, not `ready <port>`"))?;
        self.port = port;
        // Nothing more is printed on stdout; keep the pipe open (and drained) anyway.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9` of the sink; its port refuses connections until [`SmtpSink::spawn`].
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Whether the sink stopped by itself.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// When each file holding a Message-ID (by the UUID before its `@`) was stored (its mtime:
    /// the sink renames it into place before answering 250); `None` gathers mails whose
    /// Message-ID is not `<uuid@host>`.
    pub fn mails(&self) -> HashMap<Option<Uuid>, Vec<SystemTime>> {
        let mut seen = self.seen.lock().unwrap();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".eml") || seen.contains_key(&name) {
                    continue;
                }
                let at = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                if let Ok(text) = std::fs::read(entry.path()) {
                    seen.insert(name, (message_id(&text), at));
                }
            }
        }
        let mut out: HashMap<Option<Uuid>, Vec<SystemTime>> = HashMap::new();
        for (id, at) in seen.values() {
            out.entry(*id).or_default().push(*at);
        }
        out
    }

    /// Every `.eml` file stored so far.
    pub fn files(&self) -> usize {
        self.mails().values().map(Vec::len).sum()
    }
}

/// The UUID of a mail's `Message-ID: <uuid@host>` header (headers end at the first empty line).
fn message_id(raw: &[u8]) -> Option<Uuid> {
    let text = String::from_utf8_lossy(raw);
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("message-id") {
            let value = value.trim().trim_start_matches('<');
            return value.split('@').next()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_message_id() {
        let id = Uuid::new_v4();
        let raw = format!(
            "X-Sink-Mail-From: a@b\r\nX-Sink-Rcpt-To: c@d\r\nFrom: a@b\r\nMessage-ID: <{id}@127.0.0.1>\r\n\r\nMessage-ID: <x@y>\r\n"
        );
        assert_eq!(message_id(raw.as_bytes()), Some(id));
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <x>"), None);
    }
}
