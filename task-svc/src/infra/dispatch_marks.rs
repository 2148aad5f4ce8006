//! Finished dispatches marked where workers look before running a copy of one
//! ([`shared::cache::mark_dispatch_done`]). The worker that ran a dispatch marks it once the
//! broker confirmed its report; task-svc marks it too as it applies that report, so a worker
//! killed between the two leaves no finished dispatch that a copy would run again once the
//! dead worker's claim lapsed.

use redis::aio::ConnectionManager;
use uuid::Uuid;

/// Marks each `(dispatch, outcome)` done in one pipeline. Without Redis it says so and goes on:
/// the worker's own mark still covers every dispatch whose worker lives.
pub async fn mark_done(redis: &ConnectionManager, prefix: &str, finished: &[(Uuid, &str)]) {
    if finished.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (dispatch_id, outcome) in finished {
        shared::cache::mark_dispatch_done(&mut pipe, prefix, *dispatch_id, outcome);
    }
    let mut redis = redis.clone();
    if let Err(err) = pipe.query_async::<()>(&mut redis).await {
        tracing::warn!(dispatches = finished.len(), error = %err, "cannot mark finished dispatches done; a copy of one whose worker died before marking it would run again");
    }
}

/// Takes the cancel marks of `tasks` away (a workflow runs them again after a cancel): their new
/// dispatches run. Their earlier dispatches are marked done first, so that a copy of one still
/// in a queue settles without running.
pub async fn clear_cancel_marks(
    redis: &ConnectionManager,
    prefix: &str,
    earlier: &[Uuid],
    tasks: &[Uuid],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for dispatch_id in earlier {
        shared::cache::mark_dispatch_done(&mut pipe, prefix, *dispatch_id, "cancelled");
    }
    for task_id in tasks {
        pipe.del(shared::cache::cancel_mark_key(prefix, *task_id));
    }
    let mut redis = redis.clone();
    pipe.query_async::<()>(&mut redis).await
}
