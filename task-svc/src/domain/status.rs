//! A task's status, typed: a person's task moves `todo → in_progress → done`, `cancelled` from
//! any open state, and reopens (`done`/`cancelled → todo`); an automated task's status follows
//! its job (`pending`, `scheduled`, `queued`, `running`, `retrying`, then `completed`, `dead` or
//! `cancelled`). A forbidden move is a 409 naming the allowed ones. The names are converted in
//! one place, [`shared::text_enum!`], for the API and the database alike.

use serde::{Deserialize, Serialize};

use crate::error::TaskError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Todo,
    InProgress,
    Done,
    Cancelled,
    Pending,
    Scheduled,
    Queued,
    Running,
    Completed,
    Retrying,
    Dead,
}

shared::text_enum!(Status, "status", {
    Todo = "todo",
    InProgress = "in_progress",
    Done = "done",
    Cancelled = "cancelled",
    Pending = "pending",
    Scheduled = "scheduled",
    Queued = "queued",
    Running = "running",
    Completed = "completed",
    Retrying = "retrying",
    Dead = "dead",
});

use Status::*;

impl Status {
    /// The statuses of a person's task.
    pub const PEOPLE: [Status; 4] = [Todo, InProgress, Done, Cancelled];

    /// Every status a job's task can be in.
    pub const JOB: [Status; 8] = [
        Pending, Scheduled, Queued, Running, Retrying, Completed, Dead, Cancelled,
    ];

    /// A job that is not final.
    pub fn is_live_job(self) -> bool {
        matches!(self, Pending | Scheduled | Queued | Running | Retrying)
    }

    /// A job waiting for a worker to start it.
    pub fn awaits_start(self) -> bool {
        matches!(self, Pending | Scheduled | Queued | Retrying)
    }

    /// A person's task still to be done.
    pub fn is_open(self) -> bool {
        matches!(self, Todo | InProgress)
    }

    /// The statuses a person's task in `self` may move to.
    pub fn allowed_next(self) -> &'static [Status] {
        match self {
            Todo => &[InProgress, Done, Cancelled],
            InProgress => &[Todo, Done, Cancelled],
            Done | Cancelled => &[Todo],
            _ => &[],
        }
    }
}

fn names(statuses: &[Status]) -> String {
    let names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    names.join(", ")
}

/// The status a person asked for: one of [`Status::PEOPLE`], or 422 `invalid_status`.
pub fn parse_person_status(raw: &str) -> Result<Status, TaskError> {
    match raw.parse::<Status>() {
        Ok(status) if Status::PEOPLE.contains(&status) => Ok(status),
        _ => Err(TaskError::invalid(
            "invalid_status",
            format!("status must be one of {}", names(&Status::PEOPLE)),
        )),
    }
}

/// The state an operator's job search asked for: one of [`Status::JOB`], or 422
/// `invalid_filter`.
pub fn parse_job_state(raw: &str) -> Result<Status, TaskError> {
    match raw.parse::<Status>() {
        Ok(state) if Status::JOB.contains(&state) => Ok(state),
        _ => Err(TaskError::invalid(
            "invalid_filter",
            format!("state {raw:?} is not one of {}", names(&Status::JOB)),
        )),
    }
}

/// `Ok` when a person's task may move `from → to` (staying put is always allowed).
pub fn check(from: Status, to: Status) -> Result<(), TaskError> {
    if from == to || from.allowed_next().contains(&to) {
        return Ok(());
    }
    Err(TaskError::conflict(
        "forbidden_transition",
        format!(
            "a task in {from} can move to {} only",
            names(from.allowed_next())
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_one_name() {
        shared::text_enum::assert_serde_names(Status::ALL, |s| s.as_str());
        assert_eq!(
            Status::PEOPLE.len() + Status::JOB.len(),
            Status::ALL.len() + 1
        );
    }

    #[test]
    fn the_lifecycle_and_reopen_are_allowed() {
        for (from, to) in [
            (Todo, InProgress),
            (InProgress, Done),
            (Done, Todo),
            (Cancelled, Todo),
            (Todo, Cancelled),
        ] {
            assert!(check(from, to).is_ok(), "{from} → {to}");
        }
    }

    #[test]
    fn a_forbidden_move_names_the_allowed_ones() {
        let answer = |err: TaskError| shared::ApiError::from(err);
        let err = answer(check(Done, InProgress).unwrap_err());
        assert_eq!(err.status.as_u16(), 409);
        assert!(err.detail.unwrap().contains("todo"));
        for bad in ["nope", "queued"] {
            let err = answer(parse_person_status(bad).unwrap_err());
            assert_eq!(err.status.as_u16(), 422);
            assert_eq!(
                err.detail.as_deref(),
                Some("status must be one of todo, in_progress, done, cancelled")
            );
        }
    }
}
