//! Calls from one service to another's internal routes, written once: the assertion for exactly
//! this method and path ([`crate::internal`]), the caller's trace, a time limit, and the answer
//! read as its type. The routes' paths and types live beside their servers' contracts
//! ([`crate::sessions`], [`crate::tasks_api`]).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};

use crate::internal::{Caller, Payload, Trust, HEADER_ASSERTION};

/// Another service, as a caller sees it.
#[derive(Clone, Copy)]
pub struct Service<'a> {
    pub http: &'a reqwest::Client,
    pub trust: &'a Trust,
    /// Its name (the assertion's audience), such as `task-svc`.
    pub name: &'static str,
    /// Its base URL, without a trailing `/`.
    pub base: &'a str,
}

/// Why a call brought no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Unreachable, too slow, a 5xx, or an answer cut short: worth asking again later.
    #[error("{0}")]
    Unavailable(String),
    /// 404: no such thing (or not visible to the user the call acts for).
    #[error("not found")]
    NotFound,
    /// Another 4xx: the question itself was refused.
    #[error("refused with {0}")]
    Refused(StatusCode),
    /// A 2xx whose body is not the answer's type.
    #[error("an answer of another shape: {0}")]
    Malformed(String),
}

impl Service<'_> {
    /// `GET path` acting for `caller`.
    pub async fn get<A: DeserializeOwned>(
        &self,
        path: &str,
        caller: &Caller,
        timeout: Duration,
    ) -> Result<A, CallError> {
        self.call::<(), A>(Method::GET, path, caller, None, timeout)
            .await
    }

    /// `POST path` with a JSON `body`, acting for `caller`.
    pub async fn post<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        caller: &Caller,
        body: &Q,
        timeout: Duration,
    ) -> Result<A, CallError> {
        self.call(Method::POST, path, caller, Some(body), timeout)
            .await
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        caller: &Caller,
        body: Option<&Q>,
        timeout: Duration,
    ) -> Result<A, CallError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| CallError::Malformed(e.to_string()))?;
        let payload = Payload::Bytes(body.as_deref().unwrap_or_default());
        let assertion = self.trust.mint(self.name, &method, path, payload, caller);
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(HEADER_ASSERTION, assertion)
            .timeout(timeout);
        if let Some(traceparent) = crate::trace::current() {
            request = request.header("traceparent", traceparent);
        }
        if let Some(body) = body {
            request = request
                .header(axum::http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let unavailable = |e: reqwest::Error| CallError::Unavailable(e.to_string());
        let answer = request.send().await.map_err(unavailable)?;
        match answer.status() {
            status if status.is_success() => {}
            StatusCode::NOT_FOUND => return Err(CallError::NotFound),
            status if status.is_client_error() => return Err(CallError::Refused(status)),
            status => {
                return Err(CallError::Unavailable(format!(
                    "{} answered {status}",
                    self.name
                )))
            }
        }
        let bytes = answer.bytes().await.map_err(unavailable)?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Malformed(e.to_string()))
    }
}
