//! `GET /api/v1/me/overview`: one call for a home screen: the caller's profile, task counts by
//! status and unread notifications, fetched from the three services at once. A part whose
//! service is down is `null` and named in `unavailable`; the rest is still answered (200).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::{
    extract::{ConnectInfo, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::upstream::{composed, get_json, Get};
use crate::AppState;

pub async fn overview(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let state = &state;
    composed(
        state,
        peer,
        headers,
        "/api/v1/me/overview",
        |caller, forwarded| async move {
            let get = |service: &'static str, path: &'static str| {
                let base = state.upstream(service);
                let get = Get {
                    service,
                    base,
                    path,
                    timeout: Duration::from_secs(5),
                };
                get_json(&state.http, &state.trust, get, &caller, forwarded.clone())
            };
            let (profile, tasks, notifications) = tokio::join!(
                get("user-svc", "/api/v1/users/me"),
                get("task-svc", "/api/v1/tasks"),
                get("notify-svc", "/api/v1/notifications"),
            );
            let mut unavailable = Vec::new();
            if profile.is_none() {
                unavailable.push("user-svc");
            }
            let tasks = match tasks {
                Some(list) => Some(count_tasks(&list)),
                None => {
                    unavailable.push("task-svc");
                    None
                }
            };
            let notifications = match notifications {
                Some(list) => {
                    let unread = list["unread"].as_u64().unwrap_or(0);
                    Some(json!({ "unread": unread }))
                }
                None => {
                    unavailable.push("notify-svc");
                    None
                }
            };
            Json(json!({
                "profile": profile,
                "tasks": tasks,
                "notifications": notifications,
                "unavailable": unavailable,
            }))
            .into_response()
        },
    )
    .await
}

fn count_tasks(list: &Value) -> Value {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    for task in &items {
        let status = task["status"].as_str().unwrap_or("unknown").to_string();
        *by_status.entry(status).or_default() += 1;
    }
    json!({ "total": items.len(), "by_status": by_status })
}
