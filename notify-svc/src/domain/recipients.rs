//! Who hears about what: one function from an event to the notifications it causes, before
//! preferences (what each says is in `texts`). The table in `docs/notifications.md` is this
//! function; a test checks each row.
//! The person who caused a change is never told about it.

use chrono::{DateTime, Utc};
use shared::events::{
    ChannelJoined, CloudEvent, DecodeError, EventPayload, TaskAssigned, TaskCompleted, TaskDead,
    TaskDueSoon, TaskFailed, TaskMentioned, TaskStatusChanged, UserCreated, WorkflowFailed,
};
use uuid::Uuid;

use super::Kind;

/// One notification for one person, before it is rendered for a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub user_id: Uuid,
    pub kind: Kind,
    /// Who caused it (named in the text); `None` for what the platform did (a deadline, a job).
    pub actor_id: Option<Uuid>,
    /// What it is about (a task or a channel).
    pub subject: Option<Uuid>,
    /// The path it links to, below the platform's public URL.
    pub link_path: Option<String>,
    pub change: Change,
}

/// What happened, with what the text needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Assigned {
        title: String,
    },
    Mentioned {
        title: String,
        excerpt: String,
    },
    StatusChanged {
        title: String,
        from: String,
        to: String,
    },
    Completed {
        title: String,
    },
    DueSoon {
        title: String,
        due_at: DateTime<Utc>,
    },
    Failed {
        title: String,
        attempt: i32,
        max_attempts: i32,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
    Dead {
        title: String,
        attempts: i32,
        error: String,
    },
    WorkflowFailed {
        title: String,
        failed_steps: Vec<String>,
    },
    Joined {
        channel: String,
    },
    Welcome {
        name: String,
    },
    WebhookDisabled {
        url: String,
        reason: String,
    },
}

/// Whether an event of `event_type` can notify anyone: the task and channel events of
/// [`shared::events::NOTIFYING_TYPES`], and a new account (its welcome).
pub fn notifies(event_type: &str) -> bool {
    shared::events::NOTIFYING_TYPES.contains(&event_type) || event_type == UserCreated::TYPE
}

/// The first 20 of a workflow's failed steps, and how many more there are.
fn shown_steps(mut steps: Vec<String>) -> Vec<String> {
    if steps.len() > 20 {
        let more = steps.len() - 20;
        steps.truncate(20);
        steps.push(format!("and {more} more"));
    }
    steps
}

fn task_link(task_id: Uuid) -> Option<String> {
    Some(format!("/api/v1/tasks/{task_id}"))
}

/// Who hears of a task's move: its followers when the event names them, else (a job's task,
/// an event from before followers) its owner and assignee.
fn followers_or(
    followers: &Option<Vec<Uuid>>,
    owner: Uuid,
    assignee: Option<Uuid>,
) -> Vec<Option<Uuid>> {
    match followers {
        Some(people) => people.iter().copied().map(Some).collect(),
        None => vec![Some(owner), assignee],
    }
}

/// Each of `people` once, without `actor`.
fn audience(people: &[Option<Uuid>], actor: Option<Uuid>) -> Vec<Uuid> {
    let mut out: Vec<Uuid> = Vec::new();
    for person in people.iter().flatten() {
        if Some(*person) != actor && !out.contains(person) {
            out.push(*person);
        }
    }
    out
}

/// The notifications `event` causes, one per person.
pub fn drafts(event: &CloudEvent) -> Result<Vec<Draft>, DecodeError> {
    let draft = |user_id, kind, actor_id, subject: Uuid, link_path, change| Draft {
        user_id,
        kind,
        actor_id,
        subject: Some(subject),
        link_path,
        change,
    };
    Ok(match event.event_type.as_str() {
        TaskAssigned::TYPE => {
            let e: TaskAssigned = event.decode()?;
            audience(&[e.assignee_id], Some(e.actor_id))
                .into_iter()
                .map(|user| {
                    let change = Change::Assigned {
                        title: e.title.clone(),
                    };
                    let link = task_link(e.task_id);
                    draft(
                        user,
                        Kind::TaskAssigned,
                        Some(e.actor_id),
                        e.task_id,
                        link,
                        change,
                    )
                })
                .collect()
        }
        TaskMentioned::TYPE => {
            let e: TaskMentioned = event.decode()?;
            let change = Change::Mentioned {
                title: e.title,
                excerpt: e.excerpt,
            };
            let (kind, link) = (Kind::TaskMentioned, task_link(e.task_id));
            audience(&[Some(e.mentioned_id)], Some(e.author_id))
                .into_iter()
                .map(|user| {
                    draft(
                        user,
                        kind,
                        Some(e.author_id),
                        e.task_id,
                        link.clone(),
                        change.clone(),
                    )
                })
                .collect()
        }
        TaskStatusChanged::TYPE => {
            let e: TaskStatusChanged = event.decode()?;
            // Done is told once, as task.completed.
            if e.to == "done" {
                return Ok(Vec::new());
            }
            let people = followers_or(&e.followers, e.owner_id, e.assignee_id);
            audience(&people, Some(e.actor_id))
                .into_iter()
                .map(|user| {
                    let change = Change::StatusChanged {
                        title: e.title.clone(),
                        from: e.from.clone(),
                        to: e.to.clone(),
                    };
                    let link = task_link(e.task_id);
                    let kind = Kind::TaskStatusChanged;
                    draft(user, kind, Some(e.actor_id), e.task_id, link, change)
                })
                .collect()
        }
        TaskCompleted::TYPE => {
            let e: TaskCompleted = event.decode()?;
            // A program's job that succeeded: its owner asked for it; failures are told.
            if e.job_kind.is_some() {
                return Ok(Vec::new());
            }
            let people = followers_or(&e.followers, e.owner_id, e.assignee_id);
            audience(&people, Some(e.actor_id))
                .into_iter()
                .map(|user| {
                    let change = Change::Completed {
                        title: e.title.clone(),
                    };
                    let link = task_link(e.task_id);
                    draft(
                        user,
                        Kind::TaskCompleted,
                        Some(e.actor_id),
                        e.task_id,
                        link,
                        change,
                    )
                })
                .collect()
        }
        TaskDueSoon::TYPE => {
            let e: TaskDueSoon = event.decode()?;
            let user = e.assignee_id.unwrap_or(e.owner_id);
            let change = Change::DueSoon {
                title: e.title,
                due_at: e.due_at,
            };
            let link = task_link(e.task_id);
            vec![draft(
                user,
                Kind::TaskDueSoon,
                None,
                e.task_id,
                link,
                change,
            )]
        }
        TaskFailed::TYPE => {
            let e: TaskFailed = event.decode()?;
            let change = Change::Failed {
                title: e.title,
                attempt: e.attempt,
                max_attempts: e.max_attempts,
                error: e.error.chars().take(500).collect(),
                retry_at: e.retry_at,
            };
            let link = task_link(e.task_id);
            vec![draft(
                e.owner_id,
                Kind::TaskFailed,
                None,
                e.task_id,
                link,
                change,
            )]
        }
        TaskDead::TYPE => {
            let e: TaskDead = event.decode()?;
            let change = Change::Dead {
                title: e.title,
                attempts: e.attempts,
                error: e.error.chars().take(500).collect(),
            };
            let link = task_link(e.task_id);
            vec![draft(
                e.owner_id,
                Kind::TaskDead,
                None,
                e.task_id,
                link,
                change,
            )]
        }
        WorkflowFailed::TYPE => {
            let WorkflowFailed(e) = event.decode()?;
            let change = Change::WorkflowFailed {
                title: e.title,
                failed_steps: shown_steps(e.failed_steps),
            };
            let link = Some(format!("/api/v1/workflows/{}", e.workflow_id));
            vec![draft(
                e.owner_id,
                Kind::WorkflowFailed,
                None,
                e.workflow_id,
                link,
                change,
            )]
        }
        ChannelJoined::TYPE => {
            let e: ChannelJoined = event.decode()?;
            audience(&[Some(e.owner_id)], Some(e.user_id))
                .into_iter()
                .map(|user| {
                    let change = Change::Joined {
                        channel: e.channel_name.clone(),
                    };
                    let link = Some(format!("/api/v1/channels/{}", e.channel_id));
                    let kind = Kind::ChannelJoined;
                    draft(user, kind, Some(e.user_id), e.channel_id, link, change)
                })
                .collect()
        }
        // Welcome: the one notification about something the person did themselves.
        UserCreated::TYPE => {
            let e: UserCreated = event.decode()?;
            let change = Change::Welcome {
                name: e.display_name,
            };
            vec![draft(
                e.user_id,
                Kind::Welcome,
                None,
                e.user_id,
                None,
                change,
            )]
        }
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::EventPayload;

    fn event<T: EventPayload>(data: T) -> CloudEvent {
        CloudEvent::new("test", data).into_untyped().unwrap()
    }

    fn who(drafts: &[Draft]) -> Vec<(Uuid, Kind)> {
        drafts.iter().map(|d| (d.user_id, d.kind)).collect()
    }

    struct People {
        owner: Uuid,
        assignee: Uuid,
        other: Uuid,
    }

    fn people() -> People {
        People {
            owner: Uuid::now_v7(),
            assignee: Uuid::now_v7(),
            other: Uuid::now_v7(),
        }
    }

    #[test]
    fn task_assigned_tells_the_new_assignee_unless_they_did_it() {
        let p = people();
        let assigned = |actor| TaskAssigned {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            actor_id: actor,
            assignee_id: Some(p.assignee),
            previous_assignee_id: None,
            title: "Write docs".into(),
            pool: None,
        };
        let d = drafts(&event(assigned(p.owner))).unwrap();
        assert_eq!(who(&d), [(p.assignee, Kind::TaskAssigned)]);
        assert_eq!(d[0].title(Some("Ada")), "Ada assigned you “Write docs”");
        assert!(d[0]
            .link_path
            .as_deref()
            .unwrap()
            .starts_with("/api/v1/tasks/"));
        assert!(drafts(&event(assigned(p.assignee))).unwrap().is_empty());
        // A job handed to a pool has no assignee: nobody to tell.
        let mut pool = assigned(p.owner);
        pool.assignee_id = None;
        pool.pool = Some("default".into());
        assert!(drafts(&event(pool)).unwrap().is_empty());
    }

    #[test]
    fn a_mention_tells_the_person_named_unless_they_wrote_it() {
        let p = people();
        let mentioned = |author, named| TaskMentioned {
            task_id: Uuid::now_v7(),
            comment_id: Uuid::now_v7(),
            author_id: author,
            mentioned_id: named,
            title: "Roof".into(),
            excerpt: "@Bob look".into(),
        };
        let d = drafts(&event(mentioned(p.owner, p.other))).unwrap();
        assert_eq!(who(&d), [(p.other, Kind::TaskMentioned)]);
        assert_eq!(d[0].title(Some("Ada")), "Ada mentioned you on “Roof”");
        assert_eq!(d[0].body(Some("Ada")), "Ada wrote on “Roof”: @Bob look");
        assert!(drafts(&event(mentioned(p.owner, p.owner)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn status_changes_and_completion_tell_owner_and_assignee_but_not_the_actor() {
        let p = people();
        let moved = |actor, to: &str| TaskStatusChanged {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            actor_id: actor,
            title: "T".into(),
            from: "todo".into(),
            to: to.into(),
            assignee_id: Some(p.assignee),
            followers: None,
        };
        let d = drafts(&event(moved(p.other, "in_progress"))).unwrap();
        assert_eq!(
            who(&d),
            [
                (p.owner, Kind::TaskStatusChanged),
                (p.assignee, Kind::TaskStatusChanged)
            ]
        );
        let d = drafts(&event(moved(p.assignee, "in_progress"))).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::TaskStatusChanged)]);
        assert!(drafts(&event(moved(p.other, "done"))).unwrap().is_empty());
        let completed = |job_kind| TaskCompleted {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            actor_id: p.assignee,
            assignee_id: Some(p.assignee),
            title: "T".into(),
            job_kind,
            followers: None,
        };
        let d = drafts(&event(completed(None))).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::TaskCompleted)]);
        assert!(drafts(&event(completed(Some("http".into()))))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_persons_task_tells_its_followers_instead() {
        let p = people();
        // The owner unfollowed; someone else follows; the actor is never told.
        let followers = Some(vec![p.assignee, p.other]);
        let moved = TaskStatusChanged {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            actor_id: p.assignee,
            title: "T".into(),
            from: "todo".into(),
            to: "in_progress".into(),
            assignee_id: Some(p.assignee),
            followers: followers.clone(),
        };
        let d = drafts(&event(moved)).unwrap();
        assert_eq!(who(&d), [(p.other, Kind::TaskStatusChanged)]);
        let completed = TaskCompleted {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            actor_id: p.other,
            assignee_id: Some(p.assignee),
            title: "T".into(),
            job_kind: None,
            followers,
        };
        let d = drafts(&event(completed)).unwrap();
        assert_eq!(who(&d), [(p.assignee, Kind::TaskCompleted)]);
    }

    #[test]
    fn due_soon_tells_the_assignee_else_the_owner() {
        let p = people();
        let due = |assignee_id| TaskDueSoon {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            assignee_id,
            title: "T".into(),
            due_at: Utc::now(),
        };
        let d = drafts(&event(due(Some(p.assignee)))).unwrap();
        assert_eq!(who(&d), [(p.assignee, Kind::TaskDueSoon)]);
        let d = drafts(&event(due(None))).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::TaskDueSoon)]);
    }

    #[test]
    fn a_jobs_failures_tell_its_owner() {
        let p = people();
        let failed = TaskFailed {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            title: "sync".into(),
            kind: "http".into(),
            pool: "default".into(),
            attempt: 1,
            max_attempts: 3,
            error: "boom".into(),
            retry_at: None,
        };
        assert_eq!(
            who(&drafts(&event(failed)).unwrap()),
            [(p.owner, Kind::TaskFailed)]
        );
        let dead = TaskDead {
            task_id: Uuid::now_v7(),
            owner_id: p.owner,
            title: "sync".into(),
            kind: "http".into(),
            pool: "default".into(),
            attempts: 3,
            error: "boom".into(),
        };
        let d = drafts(&event(dead)).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::TaskDead)]);
        assert!(d[0].body(None).contains("boom"));
    }

    #[test]
    fn a_failed_workflow_tells_its_owner_which_steps_failed() {
        let p = people();
        let failed = WorkflowFailed(shared::events::WorkflowFields {
            workflow_id: Uuid::now_v7(),
            owner_id: p.owner,
            title: "nightly".into(),
            status: "failed".into(),
            steps: 3,
            failed_steps: vec!["fetch".into(), "report".into()],
        });
        let d = drafts(&event(failed)).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::WorkflowFailed)]);
        assert!(
            d[0].body(None).contains("fetch, report"),
            "{}",
            d[0].body(None)
        );
        assert!(d[0]
            .link_path
            .as_deref()
            .unwrap()
            .starts_with("/api/v1/workflows/"));
    }

    #[test]
    fn joining_a_channel_tells_its_owner_unless_the_owner_joined() {
        let p = people();
        let joined = |user_id| ChannelJoined {
            channel_id: Uuid::now_v7(),
            channel_name: "ops".into(),
            owner_id: p.owner,
            user_id,
        };
        let d = drafts(&event(joined(p.other))).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::ChannelJoined)]);
        assert_eq!(d[0].actor_id, Some(p.other));
        assert!(drafts(&event(joined(p.owner))).unwrap().is_empty());
    }

    #[test]
    fn a_new_user_is_welcomed() {
        let p = people();
        let created = UserCreated {
            user_id: p.owner,
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            role: "member".into(),
        };
        let d = drafts(&event(created)).unwrap();
        assert_eq!(who(&d), [(p.owner, Kind::Welcome)]);
        assert_eq!(d[0].title(None), "Welcome to Taskmesh, Ada");
    }
}
