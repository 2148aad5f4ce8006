//! Fanning events out: the users read model first (a new user can be welcomed by mail), then
//! each person an event concerns ([`crate::domain::recipients`]) on each channel they left on:
//! an in-app notification (announced as `notification.created`), a queued mail and text (sent
//! by their own consumers), and webhook deliveries. All in the caller's transaction, once per
//! event, a run of events written with one statement of each kind.

use std::collections::{HashMap, HashSet};

use shared::events::{
    AccountMail, CloudEvent, DecodeError, EventPayload, MailDue, NotificationCreated, SmsDue,
    UserCreated, UserDeleted, UserUpdated, VerificationMailDue,
};
use shared::{idempotency, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::recipients::{self, Draft};
use crate::domain::{Channel, Kind};
use crate::store::messages::{self, Content, NewMessage};
use crate::store::notifications::{self, NewNotification};
use crate::store::{preferences, users};
use crate::{AppState, SERVICE};

/// Name under which this consumer records processed events.
pub const CONSUMER: &str = "notify-svc.notifications";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Malformed(#[from] DecodeError),
}

/// Whether `event_type` can change anything here (the others are acked untouched).
pub fn concerns(event_type: &str) -> bool {
    recipients::notifies(event_type)
        || event_type == UserUpdated::TYPE
        || event_type == UserDeleted::TYPE
        || event_type == VerificationMailDue::TYPE
}

/// Whether `event` needs the database: a change to a user, or an event someone is told of. The
/// others (a job's pool announcement, a program's job that succeeded: most of a job engine's
/// events) are acked untouched, without even an idempotency record, since applying them twice
/// changes nothing either.
pub fn needs_work(event: &CloudEvent) -> Result<bool, Error> {
    if !concerns(&event.event_type) {
        return Ok(false);
    }
    if event.event_type.starts_with("user.") || event.event_type == VerificationMailDue::TYPE {
        return Ok(true);
    }
    Ok(!recipients::drafts(event)?.is_empty())
}

/// Applies `events` inside `tx`, each once, in their order: a change to a user alone (what
/// follows must see it), the runs of events people are told of between them together, one
/// statement of each kind per run (a bulk of task events is thousands of events).
pub async fn apply(
    state: &AppState,
    tx: &mut PgConnection,
    events: &[&CloudEvent],
) -> Result<(), Error> {
    let events: Vec<&CloudEvent> = events
        .iter()
        .copied()
        .filter(|e| concerns(&e.event_type))
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let mut fresh = idempotency::first_times(&mut *tx, CONSUMER, &ids).await?;
    let mut plan = Plan::default();
    for event in events {
        if !fresh.remove(&event.id) {
            tracing::debug!(event_id = %event.id, "duplicate event skipped");
            continue;
        }
        match event.event_type.as_str() {
            UserCreated::TYPE => {
                let e: UserCreated = event.decode()?;
                plan.write(state, tx).await?;
                users::upsert_created(&mut *tx, e.user_id, &e.email, &e.display_name).await?;
            }
            UserUpdated::TYPE => {
                let e: UserUpdated = event.decode()?;
                plan.write(state, tx).await?;
                let (name, verified) = (&e.display_name, e.email_verified);
                users::update(&mut *tx, e.user_id, name, e.active, verified).await?;
                if let Some(email) = &e.email {
                    users::set_email(&mut *tx, e.user_id, email).await?;
                }
                continue;
            }
            VerificationMailDue::TYPE => {
                let e: VerificationMailDue = event.decode()?;
                plan.write(state, tx).await?;
                users::ensure(&mut *tx, e.user_id, &e.email).await?;
                let mut rows = Rows::default();
                rows.verification(state, event.id, e);
                rows.write(tx).await?;
                continue;
            }
            UserDeleted::TYPE => {
                let e: UserDeleted = event.decode()?;
                plan.write(state, tx).await?;
                users::delete(&mut *tx, e.user_id).await?;
                continue;
            }
            _ => {}
        }
        for draft in recipients::drafts(event)? {
            plan.drafts.push((event, draft));
        }
    }
    plan.write(state, tx).await?;
    Ok(())
}

/// The drafts of a run of events, turned into rows all at once.
#[derive(Default)]
struct Plan<'a> {
    drafts: Vec<(&'a CloudEvent, Draft)>,
}

impl<'a> Plan<'a> {
    /// Writes the drafts (each person on each channel they left on), leaving none.
    async fn write(&mut self, state: &AppState, tx: &mut PgConnection) -> Result<(), Error> {
        let drafts = std::mem::take(&mut self.drafts);
        if drafts.is_empty() {
            return Ok(());
        }
        let mut people: Vec<Uuid> = drafts.iter().map(|(_, d)| d.user_id).collect();
        people.extend(drafts.iter().filter_map(|(_, d)| d.actor_id));
        people.sort_unstable();
        people.dedup();
        let known: HashMap<Uuid, users::User> = users::many(&mut *tx, &people)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        let mut recipients: Vec<Uuid> = drafts.iter().map(|(_, d)| d.user_id).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let choices = preferences::choices(&mut *tx, &recipients, None).await?;
        let mut rows = Rows::default();
        let mut hooks = Vec::new();
        for (event, draft) in &drafts {
            let recipient = known.get(&draft.user_id);
            if recipient.is_some_and(|u| !u.active) {
                continue;
            }
            let actor = draft
                .actor_id
                .and_then(|a| known.get(&a))
                .map(|u| u.display_name.as_str());
            let choice = choices.get(&draft.user_id).cloned().unwrap_or_default();
            let on = |channel| choice.enabled(draft.kind, channel);
            let title = draft.title(actor);
            let body = draft.body(actor);
            let link = draft.link_path.as_deref().map(|p| state.links.absolute(p));
            if on(Channel::InApp) {
                rows.in_app(event.id, draft, &title, &body, link.clone());
            }
            if let Some(user) = recipient {
                let content = |to: &str| Content {
                    to_name: user.display_name.clone(),
                    to: to.to_string(),
                    title: title.clone(),
                    body: body.clone(),
                    link: link.clone(),
                };
                if on(Channel::Email) && user.email_verified {
                    rows.queue(event.id, draft, Channel::Email, content(&user.email));
                }
                if let (true, true, Some(phone)) = (
                    on(Channel::Sms),
                    state.config.sms.enabled(),
                    choice.texts_to(),
                ) {
                    rows.queue(event.id, draft, Channel::Sms, content(phone));
                }
            }
            if on(Channel::Webhook) {
                hooks.push((draft.user_id, draft.kind, *event));
            }
        }
        rows.write(tx).await?;
        crate::webhooks::store::enqueue_events(&mut *tx, &hooks).await?;
        Ok(())
    }
}

/// In-app notifications and queued messages to write together.
#[derive(Default)]
struct Rows {
    notes: Vec<NewNotification>,
    messages: Vec<NewMessage>,
}

impl Rows {
    fn in_app(
        &mut self,
        event_id: Uuid,
        draft: &Draft,
        title: &str,
        body: &str,
        link: Option<String>,
    ) {
        self.notes.push(NewNotification {
            user_id: draft.user_id,
            kind: draft.kind.as_str().into(),
            title: title.into(),
            body: body.into(),
            subject: draft.subject.map(|s| s.to_string()),
            actor_id: draft.actor_id,
            link,
            event_id,
        });
    }

    /// The mail with the link that verifies `due.email`: whatever the preferences, no text
    /// anyone wrote (not even the recipient's name), no unsubscribe link.
    fn verification(&mut self, state: &AppState, event_id: Uuid, due: VerificationMailDue) {
        let until = due.expires_at.format("%Y-%m-%d %H:%M UTC");
        let (title, page, body) = match due.purpose {
            AccountMail::Verification => (
                "Confirm your email address for Taskmesh",
                "verify-email",
                format!("The link works until {until}."),
            ),
            AccountMail::EmailChange => (
                "Confirm your new email address for Taskmesh",
                "verify-email",
                format!(
                    "Open the link to make this your account's address. It works until {until}; \
                     until then your account keeps its address."
                ),
            ),
            AccountMail::PasswordReset => (
                "Reset your Taskmesh password",
                "reset-password",
                format!(
                    "Open the link to choose a new password. It works once, until {until}. If \
                     you did not ask for it, ignore this mail: your password stays as it is."
                ),
            ),
        };
        let link = format!("/{page}?token={}", due.token);
        let content = Content {
            to_name: String::new(),
            to: due.email,
            title: title.into(),
            body,
            link: Some(state.links.absolute(&link)),
        };
        let (kind, channel) = (Kind::EmailVerification, Channel::Email);
        self.message(event_id, due.user_id, kind, channel, content);
    }

    /// Queues one message to `user_id` (its id made from the event, the kind and the channel).
    fn message(
        &mut self,
        event_id: Uuid,
        user_id: Uuid,
        kind: Kind,
        channel: Channel,
        content: Content,
    ) {
        self.messages.push(NewMessage {
            id: messages::message_id(event_id, user_id, kind, channel),
            channel,
            user_id,
            kind,
            event_id,
            content,
        });
    }

    fn queue(&mut self, event_id: Uuid, draft: &Draft, channel: Channel, content: Content) {
        self.message(event_id, draft.user_id, draft.kind, channel, content);
    }

    /// The notifications (each announced as `notification.created`), and the messages with the
    /// commands that send them (the mail or SMS queue); only the new ones of each.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        let created: Vec<CloudEvent<NotificationCreated>> =
            notifications::insert_many(&mut *tx, &self.notes)
                .await?
                .into_iter()
                .map(|(user_id, written)| {
                    CloudEvent::new(
                        SERVICE,
                        NotificationCreated {
                            notification_id: written.id,
                            user_id,
                            kind: written.kind,
                            title: written.title,
                            link: written.link,
                            actor_id: written.actor_id,
                        },
                    )
                })
                .collect();
        let new: HashSet<Uuid> = messages::insert_many(&mut *tx, &self.messages)
            .await?
            .into_iter()
            .collect();
        let mut mail = Vec::new();
        let mut texts = Vec::new();
        for message in self.messages.iter().filter(|m| new.contains(&m.id)) {
            match message.channel {
                Channel::Email => mail.push(CloudEvent::new(
                    SERVICE,
                    MailDue {
                        message_id: message.id,
                    },
                )),
                _ => texts.push(CloudEvent::new(
                    SERVICE,
                    SmsDue {
                        message_id: message.id,
                    },
                )),
            }
        }
        if !created.is_empty() {
            outbox::enqueue_many(&mut *tx, created).await?;
        }
        if !mail.is_empty() {
            outbox::enqueue_many(&mut *tx, mail).await?;
        }
        if !texts.is_empty() {
            outbox::enqueue_many(&mut *tx, texts).await?;
        }
        Ok(())
    }
}

/// Texts `body` (a verification code) to `phone`, whatever the preferences: the number is not
/// verified yet.
pub async fn text_code(
    tx: &mut PgConnection,
    user_id: Uuid,
    phone: &str,
    body: String,
) -> Result<(), sqlx::Error> {
    let content = Content {
        to_name: String::new(),
        to: phone.to_string(),
        title: body,
        body: String::new(),
        link: None,
    };
    let mut rows = Rows::default();
    let (kind, channel) = (Kind::SmsVerification, Channel::Sms);
    rows.message(Uuid::now_v7(), user_id, kind, channel, content);
    rows.write(tx).await
}

/// Tells `user_id` about something notify-svc itself noticed (a webhook endpoint it disabled):
/// in-app and by mail, as their preferences for `kind` say.
pub async fn tell(
    state: &AppState,
    tx: &mut PgConnection,
    draft: &Draft,
) -> Result<(), sqlx::Error> {
    let event_id = Uuid::now_v7();
    let choices = preferences::choices(&mut *tx, &[draft.user_id], Some(draft.kind)).await?;
    let choice = choices.get(&draft.user_id).cloned().unwrap_or_default();
    let (title, body) = (draft.title(None), draft.body(None));
    let link = draft.link_path.as_deref().map(|p| state.links.absolute(p));
    let mut rows = Rows::default();
    if choice.enabled(draft.kind, Channel::InApp) {
        rows.in_app(event_id, draft, &title, &body, link.clone());
    }
    if choice.enabled(draft.kind, Channel::Email) {
        let user = users::many(&mut *tx, &[draft.user_id]).await?.pop();
        if let Some(user) = user.filter(|u| u.email_verified) {
            let content = Content {
                to_name: user.display_name,
                to: user.email,
                title,
                body,
                link,
            };
            rows.queue(event_id, draft, Channel::Email, content);
        }
    }
    rows.write(tx).await
}

#[cfg(test)]
mod tests {
    use shared::events::{CloudEvent, TaskAssigned, TaskCompleted, UserUpdated};
    use uuid::Uuid;

    use super::needs_work;

    fn event<T: shared::events::EventPayload>(data: T) -> CloudEvent {
        CloudEvent::new("test", data).into_untyped().unwrap()
    }

    fn completed(job_kind: Option<&str>) -> CloudEvent {
        event(TaskCompleted {
            task_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            actor_id: Uuid::now_v7(),
            assignee_id: None,
            title: "t".into(),
            job_kind: job_kind.map(str::to_string),
            followers: None,
        })
    }

    #[test]
    fn only_events_someone_is_told_of_or_user_changes_need_the_database() {
        assert!(
            needs_work(&completed(None)).unwrap(),
            "a person's task done"
        );
        assert!(!needs_work(&completed(Some("noop"))).unwrap(), "a job done");
        let to_pool = TaskAssigned {
            task_id: Uuid::now_v7(),
            owner_id: Uuid::now_v7(),
            actor_id: Uuid::nil(),
            assignee_id: None,
            previous_assignee_id: None,
            title: "t".into(),
            pool: Some("default".into()),
        };
        assert!(!needs_work(&event(to_pool)).unwrap());
        let user = UserUpdated {
            user_id: Uuid::now_v7(),
            display_name: "Ada".into(),
            role: "member".into(),
            active: false,
            email_verified: Some(true),
            email: None,
            changed: vec!["active".into()],
        };
        assert!(needs_work(&event(user)).unwrap());
    }
}
