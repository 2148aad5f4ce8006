//! What only the end of a run shows: calls, mails and webhooks that arrived after their fault
//! was checked, and ones for requests nobody made.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::receiver::{Hooks, Receiver};
use crate::smtp::SmtpSink;

/// What was counted of one person's task's mail and webhooks, to find late ones at the end.
#[derive(Clone, Debug, Default)]
pub struct Told {
    pub mail_ids: Vec<Uuid>,
    pub mail_files: usize,
    pub hook_ids: usize,
}

/// Problems only visible at the end of the run.
#[derive(Debug, Default)]
pub struct Late {
    /// Calls, distinct Message-IDs or webhook-ids that arrived after their fault was checked.
    pub duplicated: usize,
    /// Calls, mails and webhooks for requests nobody made.
    pub unexpected: usize,
    /// Mails stored again under a Message-ID after their fault was checked (not failing).
    pub resent: usize,
    pub notes: Vec<String>,
}

/// Problems only visible at the end of the run: calls, mails and webhooks for requests of
/// finished faults that arrived after their check (late duplicates), and ones for requests
/// nobody made.
pub fn at_the_end(
    receiver: &Receiver,
    counted: &HashMap<Uuid, usize>,
    sink: &SmtpSink,
    hooks: &Hooks,
    told: &HashMap<Uuid, Told>,
    known_mail_ids: &HashSet<Uuid>,
) -> Late {
    let mut late = Late::default();
    for (req, before) in counted {
        let now = receiver.calls(req).len();
        if now > *before {
            late.duplicated += now - before;
            late.notes.push(format!(
                "duplicated: request {req} called the receiver {} more time(s) after its fault was checked",
                now - before
            ));
        }
    }
    for req in receiver.requests() {
        if !counted.contains_key(&req) {
            late.unexpected += 1;
            late.notes.push(format!(
                "unexpected: receiver called for request {req}, which nobody made"
            ));
        }
    }
    if receiver.strays() > 0 {
        late.unexpected += receiver.strays();
        late.notes.push(format!(
            "unexpected: {} receiver calls without a request id",
            receiver.strays()
        ));
    }
    let at_sink = sink.mails();
    let mut mine: HashSet<Uuid> = HashSet::new();
    for (task, before) in told {
        mine.extend(before.mail_ids.iter().copied());
        let stored: Vec<usize> = before
            .mail_ids
            .iter()
            .map(|id| at_sink.get(&Some(*id)).map_or(0, Vec::len))
            .collect();
        let distinct = stored.iter().filter(|n| **n > 0).count();
        let files: usize = stored.iter().sum();
        if distinct > 1 && files > before.mail_files {
            late.duplicated += distinct - 1;
            late.notes.push(format!(
                "duplicated: task {task} mailed under {distinct} Message-IDs by the end"
            ));
        }
        if files > before.mail_files && before.mail_files > 0 {
            late.resent += files - before.mail_files;
            late.notes.push(format!(
                "resent: task {task}'s mail stored {} more time(s) after its fault was checked",
                files - before.mail_files
            ));
        }
        let ids: HashSet<String> = hooks.calls(task).into_iter().map(|c| c.id).collect();
        if ids.len() > before.hook_ids && ids.len() > 1 {
            late.duplicated += ids.len() - before.hook_ids.max(1);
            late.notes.push(format!(
                "duplicated: task {task} got webhooks under {} webhook-ids by the end",
                ids.len()
            ));
        }
    }
    for (id, stored) in &at_sink {
        let expected = id.is_some_and(|id| mine.contains(&id) || known_mail_ids.contains(&id));
        if !expected {
            late.unexpected += stored.len();
            late.notes.push(format!(
                "unexpected: {} mail(s) at the SMTP sink with Message-ID {id:?}, which notify-svc never queued",
                stored.len()
            ));
        }
    }
    for task in hooks.tasks() {
        if !told.contains_key(&task) {
            late.unexpected += 1;
            late.notes.push(format!(
                "unexpected: webhook about task {task}, which no fault made"
            ));
        }
    }
    if hooks.strays() > 0 {
        late.unexpected += hooks.strays();
        late.notes.push(format!(
            "unexpected: {} webhook(s) about no task",
            hooks.strays()
        ));
    }
    late
}
