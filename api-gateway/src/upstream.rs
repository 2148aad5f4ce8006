//! Calls the gateway makes to a service on its own account (not proxied): a JSON `GET` as a
//! caller, for the overview and the stream's `stats` event.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, Method};
use serde_json::Value;
use shared::internal::{Caller, Payload, Trust, HEADER_ASSERTION};

/// One `GET` of a service's JSON.
pub struct Get<'a> {
    pub service: &'static str,
    /// The service's base URL.
    pub base: &'a str,
    pub path: &'static str,
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
