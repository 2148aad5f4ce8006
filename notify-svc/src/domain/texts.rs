//! What a notification says: a draft's title and body, in sentences naming who did what to
//! which task (the channels render them: mail, in-app, SMS, webhook).

use super::recipients::{Change, Draft};

impl Draft {
    /// One line naming what happened, who did it and to what.
    pub fn title(&self, actor: Option<&str>) -> String {
        let who = actor.unwrap_or("Someone");
        match &self.change {
            Change::Assigned { title } => format!("{who} assigned you “{title}”"),
            Change::Mentioned { title, .. } => format!("{who} mentioned you on “{title}”"),
            Change::StatusChanged { title, to, .. } => {
                format!("{who} moved “{title}” to {to}")
            }
            Change::Completed { title } => format!("{who} completed “{title}”"),
            Change::DueSoon { title, .. } => format!("“{title}” is due soon"),
            Change::Failed { title, .. } => format!("Job “{title}” failed an attempt"),
            Change::Dead {
                title, attempts, ..
            } => {
                format!("Job “{title}” failed for good after {attempts} attempts")
            }
            Change::WorkflowFailed { title, .. } => format!("Workflow “{title}” failed"),
            Change::Joined { channel } => format!("{who} joined your channel “{channel}”"),
            Change::Welcome { name } => format!("Welcome to Taskmesh, {name}"),
            Change::WebhookDisabled { url, .. } => format!("Your webhook {url} was disabled"),
        }
    }

    /// A few sentences with the details.
    pub fn body(&self, actor: Option<&str>) -> String {
        let who = actor.unwrap_or("Someone");
        match &self.change {
            Change::Assigned { title } => {
                format!("{who} assigned the task “{title}” to you.")
            }
            Change::Mentioned { title, excerpt } => format!("{who} wrote on “{title}”: {excerpt}"),
            Change::StatusChanged { title, from, to } => {
                format!("{who} changed the status of “{title}” from {from} to {to}.")
            }
            Change::Completed { title } => format!("{who} marked “{title}” as done."),
            Change::DueSoon { title, due_at } => format!(
                "“{title}” is due at {} UTC.",
                due_at.format("%Y-%m-%d %H:%M")
            ),
            Change::Failed {
                title,
                attempt,
                max_attempts,
                error,
                retry_at,
            } => {
                let next = match retry_at {
                    Some(at) => format!(" It will be retried at {} UTC.", at.format("%H:%M:%S")),
                    None => String::new(),
                };
                format!("Attempt {attempt} of {max_attempts} of “{title}” failed: {error}.{next}")
            }
            Change::Dead {
                title,
                attempts,
                error,
            } => format!(
                "“{title}” failed {attempts} times and was moved to the dead jobs; the last error: {error}. It can be replayed."
            ),
            Change::WorkflowFailed {
                title,
                failed_steps,
            } => format!(
                "The workflow “{title}” ended with steps that did not succeed: {}. Retry it to run \
                 again only those and what needs them.",
                failed_steps.join(", ")
            ),
            Change::Joined { channel } => {
                format!("{who} joined the channel “{channel}” that you own.")
            }
            Change::Welcome { .. } => {
                "Your account is ready. Create a task, or join a channel with its code.".into()
            }
            Change::WebhookDisabled { url, reason } => format!(
                "No more events are sent to {url}: {reason}. Re-enable it (PATCH enabled: true) once it answers again."
            ),
        }
    }
}
