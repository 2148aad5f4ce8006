//! The `stats` event, for admins who open the stream with `?stats=true`: every
//! [`STATS_EVERY`], each pool's depth and each worker, as task-svc reports them
//! (`GET /api/v1/admin/pools`, `GET /api/v1/workers`), asked as that admin.

use std::time::Duration;

use axum::response::sse::Event;
use serde_json::json;
use shared::identity::Identity;
use shared::internal::{Caller, Trust};

use crate::upstream::{get_json, Get};

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
        let get = Get {
            service: "task-svc",
            base: task_url,
            path,
            timeout: Duration::from_secs(3),
        };
        get_json(http, trust, get, &caller, Default::default())
    };
    let (pools, workers) = tokio::join!(get("/api/v1/admin/pools"), get("/api/v1/workers"));
    let data = json!({
        "at": chrono::Utc::now(),
        "pools": pools?["items"],
        "workers": workers?["items"],
    });
    Some(Event::default().event("stats").data(data.to_string()))
}
