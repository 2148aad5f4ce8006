//! Crash points for the tests and the fault suite: `TASKMESH_CRASH=<point>` makes a process die
//! at that point in its work, the way a power cut or `kill -9` would, so a test can put a crash
//! exactly where a race would otherwise put it once in a thousand runs. Points: `before_commit`
//! (media-svc, between an upload's object and its row) and `after_report` (a worker, between its
//! finished report's confirm and the ack of the dispatch and the mark on its claim).
//!
//! Unset, a point costs one comparison with a value read once.

use std::sync::LazyLock;

/// The point named by `TASKMESH_CRASH`, read once.
static POINT: LazyLock<Option<String>> = LazyLock::new(|| std::env::var("TASKMESH_CRASH").ok());

/// Dies here (`abort`: nothing flushed, nothing settled) when `TASKMESH_CRASH` names `point`.
pub fn point(point: &str) {
    if POINT.as_deref() == Some(point) {
        eprintln!("crashing at {point} (TASKMESH_CRASH)");
        std::process::abort();
    }
}
