//! notify-svc's outside world in tests: a real SMTP server (`tests/notify/smtp_sink.py`, aiosmtpd)
//! and the mails it accepted, parsed.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mail_parser::MessageParser;

/// The SMTP server: `tests/notify/smtp_sink.py`, one `.eml` file per accepted mail.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    pub fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, &[])
    }

    /// Starts the sink with more arguments (`--auth USER:PASS`, `--reject-first N`).
    pub fn start_with(dir: &Path, port: u16, args: &[&str]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/notify/smtp_sink.py");
        let mut child = Command::new(super::venv_python())
            .arg(script)
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the SMTP sink starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the sink said {line:?}"));
        Self {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every accepted mail, parsed: (envelope recipients, raw bytes).
    pub fn mails(&self) -> Vec<Mail> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                out.push(Mail::parse(&std::fs::read(path).unwrap()));
            }
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub rcpt: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    pub unsubscribe: Option<String>,
    pub unsubscribe_post: Option<String>,
    /// The message as received, for a failure to show.
    pub raw: String,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Self {
        let message = MessageParser::default().parse(raw).expect("a mail");
        let header = |name: &str| {
            message
                .header_raw(name)
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(""))
        };
        Mail {
            rcpt: header("X-Sink-Rcpt-To").unwrap_or_default(),
            to: message
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string(),
            subject: message.subject().unwrap_or_default().to_string(),
            message_id: message.message_id().unwrap_or_default().to_string(),
            text: message.body_text(0).unwrap_or_default().to_string(),
            html: message.body_html(0).unwrap_or_default().to_string(),
            unsubscribe: header("List-Unsubscribe"),
            unsubscribe_post: message
                .header_raw("List-Unsubscribe-Post")
                .map(|v| v.trim().to_string()),
            raw: String::from_utf8_lossy(raw).into_owned(),
        }
    }
}

/// A fresh folder for a sink's mails.
pub fn mail_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "taskmesh-smtp-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}
