//! Sending one mail: over SMTP with lettre (TLS, STARTTLS and authentication from `smtp.url`),
//! or, with no server configured, as an `.eml` file per mail in `smtp.mail_dir`.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use shared::config::SmtpConfig;

/// The most SMTP sends at once (the default `amqp.prefetch`). The mail consumer takes twice as
/// many commands, so a command's claim is made while others are sending and a send that ends
/// lets the next one start at once.
const SENDS_AT_ONCE: usize = 64;
/// Idle SMTP connections kept for reuse: more than the sends, because lettre puts a connection
/// back from a task of its own, so the send after it often finds the pool empty and opens one
/// more; kept, it serves later sends. With as many as the sends, those extra connections were
/// closed again at once (230 connections for 2,000 mails), and with fewer, every burst closed
/// and reopened most of them (594 with 32): a connection, greeting and EHLO each time.
const CONNECTIONS_KEPT: u32 = 2 * SENDS_AT_ONCE as u32;

/// A mail ready to leave.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Mailbox,
    pub subject: String,
    /// Without angle brackets: `<id>@<host>`.
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// The one-click unsubscribe URL (RFC 8058), if the mail is about a kind one can turn off.
    pub unsubscribe: Option<String>,
}

/// Why a mail did not leave.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server cannot be reached (refused, reset, timed out) or the mail folder cannot be
    /// written: the mail is not at fault, and it waits for the server without spending attempts.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered "try later" (4xx): worth retrying, a limited number of times.
    #[error("{0}")]
    Transient(String),
    /// The server refused it for good (5xx), or it cannot be built: retrying will not help.
    #[error("{0}")]
    Permanent(String),
}

/// Where mail goes.
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// One permit per send in flight.
        sends: tokio::sync::Semaphore,
    },
    Files {
        dir: PathBuf,
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp { .. } => f.write_str("Mailer::Smtp"),
            Mailer::Files { dir, .. } => write!(f, "Mailer::Files({})", dir.display()),
        }
    }
}

/// What an SMTP failure means for the mail. The server's own trouble (cannot be reached, or
/// refuses our login: 530, 535) holds mail until it is fixed; a timeout may have come after the
/// server took the mail, so it is retried a limited number of times (a resend keeps the
/// Message-ID); 4xx is "later", 5xx is "never".
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let why = format!("smtp: {e}");
    let code = e.status().map(|c| c.to_string());
    if matches!(code.as_deref(), Some("530" | "535")) {
        SendError::Unreachable(why)
    } else if e.is_permanent() {
        SendError::Permanent(why)
    } else if e.is_transient() || e.is_timeout() {
        SendError::Transient(why)
    } else {
        SendError::Unreachable(why)
    }
}

impl Mailer {
    pub fn from_config(config: &SmtpConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp.from: {e}"))?;
        Ok(match &config.url {
            Some(url) => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| anyhow::anyhow!("smtp.url: {e}"))?
                    .timeout(Some(Duration::from_secs(config.timeout_secs)))
                    // Room for the mail consumer's concurrent sends: lettre's default keeps 10
                    // connections, so a burst closed and reopened most of them.
                    .pool_config(PoolConfig::new().max_size(CONNECTIONS_KEPT))
                    .build(),
                from,
                sends: tokio::sync::Semaphore::new(SENDS_AT_ONCE),
            },
            None => Mailer::Files {
                dir: PathBuf::from(&config.mail_dir),
                from,
            },
        })
    }

    fn from(&self) -> &Mailbox {
        match self {
            Mailer::Smtp { from, .. } | Mailer::Files { from, .. } => from,
        }
    }

    /// The mail as it leaves (headers and both bodies).
    pub fn build(&self, mail: &Mail) -> Result<Message, SendError> {
        let mut builder = Message::builder()
            .from(self.from().clone())
            .to(mail.to.clone())
            .subject(&mail.subject)
            .message_id(Some(format!("<{}>", mail.message_id)));
        if let Some(url) = &mail.unsubscribe {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("building the mail: {e}")))
    }

    /// Sends `mail`. A file is named after the Message-ID, so writing a mail twice leaves one
    /// file, as a second SMTP send leaves one Message-ID.
    pub async fn send(&self, mail: &Mail) -> Result<(), SendError> {
        let message = self.build(mail)?;
        match self {
            Mailer::Smtp {
                transport, sends, ..
            } => {
                // Never closed, so acquiring cannot fail.
                let _send = sends.acquire().await;
                match transport.send(message).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(classify(&e)),
                }
            }
            Mailer::Files { dir, .. } => {
                let io =
                    |e: std::io::Error| SendError::Transient(format!("{}: {e}", dir.display()));
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
                let name: String = mail
                    .message_id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{name}.eml"));
                let partial = dir.join(format!(".{name}.eml.partial"));
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(io)?;
                tokio::fs::rename(&partial, &path).await.map_err(io)
            }
        }
    }
}
