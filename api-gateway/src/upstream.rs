//! Calls the gateway makes to a service on its own account (not proxied): a JSON `GET` as a
//! caller, for the answers it composes (the overview, the person search) and the stream's
//! `stats` event; and the admission those composed answers share with proxied routes.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{
    http::{HeaderMap, HeaderName, Method},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use shared::internal::{Caller, Payload, Trust, HEADER_ASSERTION};

use crate::{admission::admit, client::client_ip, proxy::RetainInternal, routes::Route, AppState};

/// Answers a request the gateway composes itself: admitted like any API route that needs a
/// token (session, rate limit, what a personal access token needs for `GET path`), then `answer` gets the caller and the headers worth passing on
/// (trace context, request id); the rate limit's headers go on whatever it answers.
pub async fn composed<F, Fut>(
    state: &AppState,
    peer: SocketAddr,
    mut headers: HeaderMap,
    path: &'static str,
    answer: F,
) -> Response
where
    F: FnOnce(Caller, HeaderMap) -> Fut,
    Fut: Future<Output = Response>,
{
    let ip = client_ip(state, &headers, peer);
    headers.retain_internal();
    let mut decision = None;
    let route = Route::new("api-gateway", false);
    let needs = crate::scopes::need(&axum::http::Method::GET, path);
    let mut response = match admit(state, route, needs, &headers, &ip, &mut decision).await {
        Ok((_, caller)) => {
            let mut forwarded = HeaderMap::new();
            for (name, value) in &headers {
                if name.as_str() == "traceparent" || name.as_str() == "x-request-id" {
                    forwarded.insert(name.clone(), value.clone());
                }
            }
            answer(caller, forwarded).await
        }
        Err(err) => err.into_response(),
    };
    if let Some(decision) = decision {
        decision.write_headers(response.headers_mut());
    }
    response
}

/// One `GET` of a service's JSON.
pub struct Get<'a> {
    pub service: &'static str,
    /// The service's base URL.
    pub base: &'a str,
    /// The path and query.
    pub path: &'a str,
    pub timeout: Duration,
}

/// `GET`s `get.path` of a service as `caller`, with `headers` and the caller's assertion; `None`
/// unless the service answers 2xx with JSON within `get.timeout`. The answer names what is
/// missing (the overview's `unavailable`, a `stats` event not sent), so this logs only at debug
/// level: an outage would otherwise log once per call.
pub async fn get_json(
    http: &reqwest::Client,
    trust: &Trust,
    get: Get<'_>,
    caller: &Caller,
    mut headers: HeaderMap,
) -> Option<Value> {
    let assertion = trust.mint(get.service, &Method::GET, get.path, Payload::EMPTY, caller);
    headers.insert(HeaderName::from_static(HEADER_ASSERTION), assertion);
    let answer = async {
        let url = format!("{}{}", get.base, get.path);
        let request = http.get(url).headers(headers).timeout(get.timeout);
        request
            .send()
            .await?
            .error_for_status()?
            .json::<Value>()
            .await
    };
    answer
        .await
        .inspect_err(|err| {
            let (service, path) = (get.service, get.path);
            tracing::debug!(service, path, error = %err, "upstream part unavailable");
        })
        .ok()
}
