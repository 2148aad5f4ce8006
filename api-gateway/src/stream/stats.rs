//! The `stats` event, for admins who open the stream with `?stats=true`: every
//! [`STATS_EVERY`], each pool's depth and each worker, as task-svc reports them
//! (`GET /api/v1/admin/pools`, `GET /api/v1/workers`), asked as that admin.

use std::time::Duration;

use axum::http::Method;
use axum::response::sse::Event;
use serde_json::{json, Value};
use shared::identity::Identity;
use shared::internal::{Caller, Trust, HEADER_ASSERTION};

/// How often a `stats` event is sent.
pub const STATS_EVERY: Duration = Duration::from_secs(5);

/// The current figures as a `stats` event; `None` while task-svc cannot say.
pub async fn snapshot(
    http: &reqwest::Client,
    trust: &Trust,
    task_url: &str,
    admin: &Identity,
) -> Option<Event> {
    let caller = Caller::user(crate::SERVICE, admin.clone(), None);
    let get = |path: &'static str| {
        let assertion = trust.mint("task-svc", &Method::GET, path, &caller);
        let request = http
            .get(format!("{task_url}{path}"))
            .header(HEADER_ASSERTION, assertion)
            .timeout(Duration::from_secs(3));
        async move {
            let answer = request.send().await.and_then(|r| r.error_for_status());
            match answer {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(err) => {
                    tracing::debug!(path, error = %err, "stream stats: task-svc did not answer");
                    None
                }
            }
        }
    };
    let (pools, workers) = tokio::join!(get("/api/v1/admin/pools"), get("/api/v1/workers"));
    let data = json!({
        "at": chrono::Utc::now(),
        "pools": pools?["items"],
        "workers": workers?["items"],
    });
    Some(Event::default().event("stats").data(data.to_string()))
}
