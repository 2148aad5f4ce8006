//! The status state machine of people's tasks: `todo → in_progress → done`, `cancelled` from any
//! open state, and reopen (`done`/`cancelled → todo`). A forbidden move is a 409 naming the
//! allowed ones.

use crate::error::TaskError;

pub const STATES: [&str; 4] = ["todo", "in_progress", "done", "cancelled"];

/// The states a task in `from` may move to.
pub fn allowed_from(from: &str) -> &'static [&'static str] {
    match from {
        "todo" => &["in_progress", "done", "cancelled"],
        "in_progress" => &["todo", "done", "cancelled"],
        "done" | "cancelled" => &["todo"],
        _ => &[],
    }
}

/// `Ok` when `from → to` is allowed (staying put is always allowed).
pub fn check(from: &str, to: &str) -> Result<(), TaskError> {
    if !STATES.contains(&to) {
        return Err(TaskError::invalid(
            "invalid_status",
            format!("status must be one of {}", STATES.join(", ")),
        ));
    }
    if from == to || allowed_from(from).contains(&to) {
        return Ok(());
    }
    Err(TaskError::conflict(
        "forbidden_transition",
        format!(
            "a task in {from} can move to {} only",
            allowed_from(from).join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_and_reopen_are_allowed() {
        for (from, to) in [
            ("todo", "in_progress"),
            ("in_progress", "done"),
            ("done", "todo"),
            ("cancelled", "todo"),
            ("todo", "cancelled"),
        ] {
            assert!(check(from, to).is_ok(), "{from} → {to}");
        }
    }

    #[test]
    fn a_forbidden_move_names_the_allowed_ones() {
        let answer = |err: TaskError| shared::ApiError::from(err);
        let err = answer(check("done", "in_progress").unwrap_err());
        assert_eq!(err.status.as_u16(), 409);
        assert!(err.detail.unwrap().contains("todo"));
        assert_eq!(
            answer(check("todo", "nope").unwrap_err()).status.as_u16(),
            422
        );
    }
}
