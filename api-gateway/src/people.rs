//! `GET /api/v1/users/search?q=`: the person picker's search, composed by the gateway. task-svc
//! knows who shares a channel with whom and searches their names (`GET /api/v1/people?q=`);
//! user-svc knows addresses and finds anyone by an exact one (`GET /api/v1/users/by-email`).
//! The answer is the exact address's person first, then the names, each person once.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{
    extract::{rejection::QueryRejection, ConnectInfo, Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::{internal::Caller, ApiError};

use crate::upstream::{composed, get_json, Get};
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
}

pub async fn search(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let state = &state;
    composed(
        state,
        peer,
        headers,
        "/api/v1/users/search",
        |caller, forwarded| async move {
            let q = match query {
                Ok(Query(query)) => query.q,
                Err(rejection) => return ApiError::from(rejection).into_response(),
            };
            let q = match text(&q) {
                Ok(q) => q,
                Err(err) => return err.into_response(),
            };
            let names_path = with_query("/api/v1/people", "q", q);
            let email_path = with_query("/api/v1/users/by-email", "email", q);
            let names = ask(state, &caller, forwarded.clone(), "task-svc", &names_path);
            // An address matches only while user-svc is up; without task-svc there is no answer.
            let by_email = async {
                match q.contains('@') {
                    true => ask(state, &caller, forwarded.clone(), "user-svc", &email_path).await,
                    false => None,
                }
            };
            let (names, by_email) = tokio::join!(names, by_email);
            let Some(names) = names else {
                return ApiError::unavailable("task-svc").into_response();
            };
            Json(json!({ "items": merge(by_email, &names) })).into_response()
        },
    )
    .await
}

/// `GET`s `path` of `service` as `caller`.
async fn ask(
    state: &AppState,
    caller: &Caller,
    forwarded: HeaderMap,
    service: &'static str,
    path: &str,
) -> Option<Value> {
    let get = Get {
        service,
        base: state.upstream(service),
        path,
        timeout: Duration::from_secs(5),
    };
    get_json(&state.http, &state.trust, get, caller, forwarded).await
}

/// The search text: task-svc's rule for it (1 to 100 characters on one line), checked here so
/// that a refusal is told as such and not as task-svc being down.
fn text(raw: &str) -> Result<&str, ApiError> {
    shared::text::one_line(raw, 100).ok_or_else(|| {
        ApiError::bad_request("invalid_query", "q must be 1 to 100 characters on one line")
    })
}

/// `path?name=value`, the value form-encoded.
fn with_query(path: &str, name: &str, value: &str) -> String {
    let base = format!("http://gateway{path}");
    let url = reqwest::Url::parse_with_params(&base, [(name, value)]).expect("a fixed base");
    format!("{path}?{}", url.query().unwrap_or_default())
}

/// The person an exact address found, then the names found, each id once.
fn merge(by_email: Option<Value>, names: &Value) -> Vec<Value> {
    let mut items: Vec<Value> = by_email.into_iter().collect();
    for person in names["items"].as_array().into_iter().flatten() {
        if !items.iter().any(|seen| seen["id"] == person["id"]) {
            items.push(person.clone());
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_match_comes_first_and_each_person_once() {
        let ada = json!({ "id": "a", "display_name": "Ada" });
        let bob = json!({ "id": "b", "display_name": "Bob" });
        let names = json!({ "items": [bob.clone(), ada.clone()] });
        assert_eq!(
            merge(Some(ada.clone()), &names),
            vec![ada.clone(), bob.clone()]
        );
        assert_eq!(merge(None, &names), vec![bob, ada]);
    }

    #[test]
    fn search_text_is_bounded_and_encoded() {
        assert!(text("  ").is_err());
        assert!(text(&"x".repeat(101)).is_err());
        assert_eq!(text(" ada ").unwrap(), "ada");
        assert_eq!(
            with_query("/api/v1/users/by-email", "email", "a+b&c@x.io"),
            "/api/v1/users/by-email?email=a%2Bb%26c%40x.io"
        );
    }
}
