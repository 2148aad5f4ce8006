//! The feed: consumes the `api-gateway.stream` queue (one gateway at a time, in order) and
//! appends each event to the stream log with its audience, the users who may see it when it is
//! written. Task, job and attachment events are shown to the task's audience as task-svc says
//! it is now (owner, assignee, channel members; [`TASK_AUDIENCE`]): a task that is gone, or a
//! member who left its channel, is shown nothing more. A deleted task's event carries its last
//! audience. A notification goes to its user; a join to the member and the channel's owner; a
//! workflow's event to the workflow's owner.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use redis::aio::ConnectionManager;
use shared::{
    calls::{CallError, Service},
    consumer::{BatchHandler, Handler, HandlerError, Incoming},
    events::{
        ChannelJoined, CloudEvent, EventPayload, JobsFinished, NotificationCreated, TaskDeleted,
        STREAMED_TYPES,
    },
    internal::{Caller, Trust},
    tasks_api::{AudienceQuery, Audiences, AUDIENCE_PATH, MAX_AUDIENCE_TASKS},
};
use uuid::Uuid;

use super::log::{self, NewEntry};

pub struct Feed {
    pub http: reqwest::Client,
    pub trust: Arc<Trust>,
    pub task_url: String,
    pub redis: ConnectionManager,
    pub prefix: String,
    pub retention_secs: u64,
}

/// Who may see an event, before task audiences are looked up.
enum Audience {
    Users(Vec<Uuid>),
    Task(Uuid),
}

fn audience_of(event: &CloudEvent) -> Result<Option<Audience>, HandlerError> {
    if !STREAMED_TYPES.contains(&event.event_type.as_str()) {
        return Ok(None);
    }
    let reject = |e: shared::events::DecodeError| HandlerError::Reject(e.into());
    let audience = match event.event_type.as_str() {
        TaskDeleted::TYPE => {
            let deleted: TaskDeleted = event.decode().map_err(reject)?;
            let mut users = deleted.audience;
            users.push(deleted.owner_id);
            Audience::Users(users)
        }
        NotificationCreated::TYPE => {
            let created: NotificationCreated = event.decode().map_err(reject)?;
            Audience::Users(vec![created.user_id])
        }
        ChannelJoined::TYPE => {
            let joined: ChannelJoined = event.decode().map_err(reject)?;
            Audience::Users(vec![joined.user_id, joined.owner_id])
        }
        // A workflow's events: shown to its owner.
        kind if kind.starts_with("workflow.") => {
            let owner = event.data.get("owner_id").and_then(|v| v.as_str());
            let owner = owner.and_then(|o| Uuid::parse_str(o).ok()).ok_or_else(|| {
                HandlerError::Reject(anyhow::anyhow!("a {kind} event without its owner_id"))
            })?;
            Audience::Users(vec![owner])
        }
        _ => match event.data.get("task_id").and_then(|v| v.as_str()) {
            Some(id) => {
                Audience::Task(Uuid::parse_str(id).map_err(|e| HandlerError::Reject(e.into()))?)
            }
            None => return Ok(None),
        },
    };
    Ok(Some(audience))
}

/// How long task-svc may take to name some tasks' audiences.
const ASK_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Why task-svc could not say who may see some tasks.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Down, slow or failing (5xx): ask again later.
    #[error("task-svc (task audiences) is unavailable: {0}")]
    Unavailable(String),
    /// It refused the question (4xx): asking again will not help.
    #[error("task-svc refused the audience question: {0}")]
    Refused(String),
}

/// The audience of each of `tasks` that still exists, from task-svc, asked as the gateway
/// acting for nobody.
pub async fn task_audiences(
    http: &reqwest::Client,
    trust: &Trust,
    task_url: &str,
    tasks: &BTreeSet<Uuid>,
) -> Result<BTreeMap<Uuid, Vec<Uuid>>, AskError> {
    let mut audiences = BTreeMap::new();
    let ids: Vec<Uuid> = tasks.iter().copied().collect();
    let task_svc = Service {
        http,
        trust,
        name: "task-svc",
        base: task_url,
    };
    let caller = Caller::anonymous(crate::SERVICE, None);
    for chunk in ids.chunks(MAX_AUDIENCE_TASKS) {
        let question = AudienceQuery {
            task_ids: chunk.to_vec(),
        };
        let asked = task_svc.post::<_, Audiences>(AUDIENCE_PATH, &caller, &question, ASK_WITHIN);
        let part = asked.await.map_err(|err| match err {
            CallError::Unavailable(e) => AskError::Unavailable(e),
            refused => AskError::Refused(refused.to_string()),
        })?;
        audiences.extend(part.audiences);
    }
    Ok(audiences)
}

impl Feed {
    async fn write(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        let mut events: Vec<(Cow<CloudEvent>, Audience)> = Vec::new();
        for message in messages {
            let event = &message.event;
            if event.event_type != JobsFinished::TYPE {
                if let Some(audience) = audience_of(event)? {
                    events.push((Cow::Borrowed(event), audience));
                }
                continue;
            }
            let reports = event
                .expand_reports()
                .map_err(|e| HandlerError::Reject(e.into()))?;
            for report in reports {
                if let Some(audience) = audience_of(&report)? {
                    events.push((Cow::Owned(report), audience));
                }
            }
        }
        let tasks: BTreeSet<Uuid> = events
            .iter()
            .filter_map(|(_, a)| match a {
                Audience::Task(id) => Some(*id),
                Audience::Users(_) => None,
            })
            .collect();
        let audiences = match tasks.is_empty() {
            true => BTreeMap::new(),
            false => task_audiences(&self.http, &self.trust, &self.task_url, &tasks)
                .await
                .map_err(|e| match e {
                    AskError::Unavailable(_) => HandlerError::Unavailable(e.into()),
                    // A deployment fault (the secret, a task-svc too old for the route): the
                    // batch is dead-lettered, loudly, rather than holding every stream up.
                    AskError::Refused(_) => {
                        tracing::error!(error = %e, "stream feed: task-svc refuses the audience question");
                        HandlerError::Reject(e.into())
                    }
                })?,
        };
        let mut entries = Vec::with_capacity(events.len());
        for (event, audience) in events {
            let task = match &audience {
                Audience::Task(id) => Some(*id),
                Audience::Users(_) => None,
            };
            let mut users = match audience {
                Audience::Users(users) => users,
                Audience::Task(id) => match audiences.get(&id) {
                    Some(users) => users.clone(),
                    None => continue, // gone: nobody may see it any more
                },
            };
            users.sort();
            users.dedup();
            if users.is_empty() {
                continue;
            }
            entries.push(NewEntry {
                event_id: event.id.to_string(),
                event_type: event.event_type.clone(),
                data: serde_json::to_string(&*event).map_err(|e| HandlerError::Reject(e.into()))?,
                users,
                task,
            });
        }
        log::append(&self.redis, &self.prefix, self.retention_secs, &entries)
            .await
            .map_err(|e| HandlerError::Unavailable(anyhow::anyhow!("redis (stream log): {e}")))
    }
}

impl Handler for Feed {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.write(std::slice::from_ref(message)).await
    }
}

impl BatchHandler for Feed {
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        self.write(messages).await
    }
}
