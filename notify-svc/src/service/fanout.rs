//! Fanning one event out: the users read model first (a new user can be welcomed by mail),
//! then each person it concerns ([`crate::domain::recipients`]) on each channel they left on:
//! an in-app notification (announced as `notification.created`), a queued mail and text (sent
//! by their own consumers), and webhook deliveries. All in the caller's transaction, once per
//! event.

use std::collections::HashMap;

use shared::events::{
    CloudEvent, DecodeError, EventPayload, MailDue, NotificationCreated, SmsDue, UserCreated,
    UserDeleted, UserUpdated,
};
use shared::{idempotency, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::recipients::{self, Draft};
use crate::domain::Channel;
use crate::store::messages::{self, Content};
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
}

/// Whether `event` needs the database: a change to a user, or an event someone is told of. The
/// others (a job's pool announcement, a program's job that succeeded: most of a job engine's
/// events) are acked untouched, without even an idempotency record, since applying them twice
/// changes nothing either.
pub fn needs_work(event: &CloudEvent) -> Result<bool, Error> {
    if !concerns(&event.event_type) {
        return Ok(false);
    }
    if event.event_type.starts_with("user.") {
        return Ok(true);
    }
    Ok(!recipients::drafts(event)?.is_empty())
}

/// Applies `event` inside `tx`, once.
pub async fn apply(
    state: &AppState,
    tx: &mut PgConnection,
    event: &CloudEvent,
) -> Result<(), Error> {
    if !concerns(&event.event_type) {
        return Ok(());
    }
    if !idempotency::first_time(&mut *tx, CONSUMER, event.id).await? {
        tracing::debug!(event_id = %event.id, "duplicate event skipped");
        return Ok(());
    }
    match event.event_type.as_str() {
        UserCreated::TYPE => {
            let e: UserCreated = event.decode()?;
            users::upsert_created(&mut *tx, e.user_id, &e.email, &e.display_name).await?;
        }
        UserUpdated::TYPE => {
            let e: UserUpdated = event.decode()?;
            users::update(&mut *tx, e.user_id, &e.display_name, e.active).await?;
            return Ok(());
        }
        UserDeleted::TYPE => {
            let e: UserDeleted = event.decode()?;
            users::delete(&mut *tx, e.user_id).await?;
            return Ok(());
        }
        _ => {}
    }
    let drafts = recipients::drafts(event)?;
    if drafts.is_empty() {
        return Ok(());
    }
    let mut people: Vec<Uuid> = drafts.iter().map(|d| d.user_id).collect();
    people.extend(drafts.iter().filter_map(|d| d.actor_id));
    let known: HashMap<Uuid, users::User> = users::many(&mut *tx, &people)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let recipients: Vec<Uuid> = drafts.iter().map(|d| d.user_id).collect();
    let choices = preferences::choices(&mut *tx, &recipients, None).await?;
    for draft in &drafts {
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
            in_app(tx, event.id, draft, &title, &body, link.clone()).await?;
        }
        if let Some(user) = recipient {
            let content = |to: &str| Content {
                to_name: user.display_name.clone(),
                to: to.to_string(),
                title: title.clone(),
                body: body.clone(),
                link: link.clone(),
            };
            if on(Channel::Email) {
                queue(tx, event.id, draft, Channel::Email, &content(&user.email)).await?;
            }
            if let (true, true, Some(phone)) =
                (on(Channel::Sms), state.config.sms.enabled(), &choice.phone)
            {
                queue(tx, event.id, draft, Channel::Sms, &content(phone)).await?;
            }
        }
        if on(Channel::Webhook) {
            crate::webhooks::store::enqueue_event(&mut *tx, draft.user_id, draft.kind, event)
                .await?;
        }
    }
    Ok(())
}

async fn in_app(
    tx: &mut PgConnection,
    event_id: Uuid,
    draft: &Draft,
    title: &str,
    body: &str,
    link: Option<String>,
) -> Result<(), sqlx::Error> {
    let note = NewNotification {
        user_id: draft.user_id,
        kind: draft.kind.as_str().into(),
        title: title.into(),
        body: body.into(),
        subject: draft.subject.map(|s| s.to_string()),
        actor_id: draft.actor_id,
        link,
        event_id,
    };
    if let Some(written) = notifications::insert(&mut *tx, &note).await? {
        let created = NotificationCreated {
            notification_id: written.id,
            user_id: note.user_id,
            kind: written.kind,
            title: written.title,
            link: written.link,
            actor_id: written.actor_id,
        };
        outbox::enqueue(tx, CloudEvent::new(SERVICE, created)).await?;
    }
    Ok(())
}

/// Writes the message and the command that sends it (the mail or SMS queue).
async fn queue(
    tx: &mut PgConnection,
    event_id: Uuid,
    draft: &Draft,
    channel: Channel,
    content: &Content,
) -> Result<(), sqlx::Error> {
    let id = messages::message_id(event_id, draft.user_id, draft.kind, channel);
    if !messages::insert(
        &mut *tx,
        id,
        channel,
        draft.user_id,
        draft.kind,
        event_id,
        content,
    )
    .await?
    {
        return Ok(());
    }
    match channel {
        Channel::Email => {
            outbox::enqueue(tx, CloudEvent::new(SERVICE, MailDue { message_id: id })).await?;
        }
        _ => {
            outbox::enqueue(tx, CloudEvent::new(SERVICE, SmsDue { message_id: id })).await?;
        }
    }
    Ok(())
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
    if choice.enabled(draft.kind, Channel::InApp) {
        in_app(tx, event_id, draft, &title, &body, link.clone()).await?;
    }
    if choice.enabled(draft.kind, Channel::Email) {
        if let Some(user) = users::many(&mut *tx, &[draft.user_id]).await?.pop() {
            let content = Content {
                to_name: user.display_name,
                to: user.email,
                title,
                body,
                link,
            };
            queue(tx, event_id, draft, Channel::Email, &content).await?;
        }
    }
    Ok(())
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
            changed: vec!["active".into()],
        };
        assert!(needs_work(&event(user)).unwrap());
    }
}
