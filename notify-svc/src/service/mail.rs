//! Sending one queued mail, and the digest of mails held back by the hourly cap.

use std::time::Duration;

use lettre::message::Mailbox;
use serde_json::json;
use uuid::Uuid;

use crate::channels::mail::{Mail, Mailer, SendError};
use crate::channels::templates;
use crate::domain::Kind;
use crate::store::messages::{self, Claim, Content, Message};
use crate::AppState;

/// What became of a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Over the hourly cap: it waits for the digest.
    Held,
    /// Sent, held or given up before (a redelivered command), or gone with its user.
    AlreadySettled,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Another sender holds the mail's claim: wait for it to settle or lapse.
    #[error("another sender holds this mail's claim")]
    Busy,
    #[error(transparent)]
    Send(#[from] SendError),
}

/// The host part of Message-IDs: the public URL's host.
fn id_host(state: &AppState) -> String {
    url::Url::parse(&state.config.notifications.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "taskmesh.invalid".into())
}

fn mailbox(content: &Content) -> Result<Mailbox, SendError> {
    let address = content
        .to
        .parse()
        .map_err(|e| SendError::Permanent(format!("bad address {:?}: {e}", content.to)))?;
    let name = Some(content.to_name.clone()).filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, address))
}

/// The mail for a queued message: its Message-ID is made from the message id, which is made
/// from the event, the recipient and the kind.
pub fn compose(state: &AppState, message: &Message) -> Result<Mail, SendError> {
    let content = &message.content;
    let kind = message.kind.parse::<Kind>().ok();
    // The verification mail goes to an address nobody has confirmed: a template of its own,
    // with nothing anyone wrote in it, and nothing to unsubscribe from.
    let verification = kind == Some(Kind::EmailVerification);
    let unsubscribe = kind
        .filter(|_| !verification)
        .map(|k| state.links.url(message.user_id, k));
    let (text, html) = templates::render(
        if verification {
            "verification"
        } else {
            "notification"
        },
        json!({
            "to_name": content.to_name,
            "title": content.title,
            "body": content.body,
            "link": content.link,
            "kind_label": message.kind,
            "unsubscribe": unsubscribe,
        }),
    )
    .map_err(|e| SendError::Permanent(format!("rendering: {e}")))?;
    Ok(Mail {
        to: mailbox(content)?,
        subject: content.title.clone(),
        message_id: format!("{}@{}", message.id, id_host(state)),
        text,
        html,
        unsubscribe,
    })
}

/// How long a claim on a mail lasts: a send is a handful of SMTP commands, each bounded by
/// `smtp.timeout_secs`. A claimed mail may first wait for one of the sends ahead of it (the
/// consumer handles twice as many commands as it sends at once), which takes milliseconds
/// unless the server answers every command near the timeout; the lease is not lengthened for
/// that case, because it is also how long a killed sender's mail waits before another sends it
/// (with 24 timeouts, 270 s by default, and the fault suite's mail came after its deadline).
fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.config.smtp.timeout_secs * 8 + 30)
}

/// Sends the queued mail `id`, unless it was settled before, another sender holds it, its person
/// is gone, or they are over the hourly cap (it waits for the digest). A failure hands it back
/// (the caller retries or holds it) or, when permanent or `last_attempt`, marks it failed.
pub async fn deliver(
    state: &AppState,
    mailer: &Mailer,
    id: Uuid,
    last_attempt: bool,
) -> Result<Outcome, Error> {
    let cap = i64::from(state.config.notifications.email_hourly_cap);
    let message = match state.claims.claim(id, cap, lease(state)).await? {
        (Claim::Claimed, Some(message)) => message,
        (Claim::Busy, _) => return Err(Error::Busy),
        (Claim::Held, _) => {
            metrics::counter!("taskmesh_notify_mail_total", "outcome" => "held").increment(1);
            return Ok(Outcome::Held);
        }
        _ => return Ok(Outcome::AlreadySettled),
    };
    let sent = match compose(state, &message) {
        Ok(mail) => {
            shared::trace::span::call("send email", channel("email"), mailer.send(&mail)).await
        }
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => {
            state.claims.settle(id, "sent", None).await?;
            metrics::counter!("taskmesh_notify_mail_total", "outcome" => "sent").increment(1);
            Ok(Outcome::Sent)
        }
        // The server is away: handed back without an attempt; the consumer holds the command.
        Err(err @ SendError::Unreachable(_)) => {
            messages::release(&state.pool, id, None).await?;
            Err(err.into())
        }
        Err(err) => {
            let text = err.to_string();
            if last_attempt || matches!(err, SendError::Permanent(_)) {
                state.claims.settle(id, "failed", Some(&text)).await?;
                metrics::counter!("taskmesh_notify_mail_total", "outcome" => "failed").increment(1);
            } else {
                messages::release(&state.pool, id, Some(&text)).await?;
            }
            Err(err.into())
        }
    }
}

/// The digest of `held` (one person's held mails, oldest first).
fn digest(state: &AppState, digest_id: Uuid, held: &[Message]) -> Result<Mail, SendError> {
    let first = &held[0].content;
    let items: Vec<_> = held
        .iter()
        .map(|m| json!({"title": m.content.title, "body": m.content.body, "link": m.content.link}))
        .collect();
    let title = format!("{} Taskmesh notifications", held.len());
    let (text, html) = templates::render(
        "digest",
        json!({"to_name": first.to_name, "title": title, "items": items}),
    )
    .map_err(|e| SendError::Permanent(format!("rendering: {e}")))?;
    Ok(Mail {
        to: mailbox(first)?,
        subject: title,
        message_id: format!("{digest_id}@{}", id_host(state)),
        text,
        html,
        unsubscribe: None,
    })
}

/// Sends one digest to each person with held mail and room under the cap; how many digests.
/// One person's trouble does not hold up the others'.
pub async fn send_digests(state: &AppState, mailer: &Mailer) -> Result<usize, Error> {
    let cap = i64::from(state.config.notifications.email_hourly_cap);
    let mut sent = 0;
    for user_id in messages::digest_due(&state.pool, cap).await? {
        let mut tx = state.pool.begin().await?;
        let held = messages::lock_held(&mut tx, user_id).await?;
        if held.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = held.iter().map(|m| m.id).collect();
        let seed: String = ids.iter().map(Uuid::to_string).collect();
        let digest_id = Uuid::new_v5(&user_id, seed.as_bytes());
        let outcome = match digest(state, digest_id, &held) {
            Ok(mail) => mailer.send(&mail).await.map(|()| mail.subject),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(subject) => {
                let content = Content {
                    title: subject,
                    body: String::new(),
                    link: None,
                    ..held[0].content.clone()
                };
                messages::digested(&mut tx, &ids, digest_id, user_id, &content).await?;
                tx.commit().await?;
                metrics::counter!("taskmesh_notify_mail_total", "outcome" => "digest").increment(1);
                sent += 1;
            }
            // Refused for good (the address is gone): give these up, go on with the others.
            Err(SendError::Permanent(why)) => {
                tracing::warn!(%user_id, error = %why, "a digest was refused; its mails are failed");
                messages::fail_held(&mut tx, &ids, &why).await?;
                tx.commit().await?;
            }
            // The server is away or busy: the mails stay held for the next round.
            Err(err) => {
                tracing::warn!(%user_id, error = %err, "a digest could not be sent; trying next round");
            }
        }
    }
    Ok(sent)
}

/// The attributes of a notification's send on its span.
pub fn channel(name: &'static str) -> impl FnOnce() -> Vec<shared::trace::KeyValue> {
    move || {
        vec![shared::trace::KeyValue::new(
            "taskmesh.notification.channel",
            name,
        )]
    }
}
