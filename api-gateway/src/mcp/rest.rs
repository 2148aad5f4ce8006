//! A tool's call to the REST API: a request to this gateway's own router, in-process, with the
//! agent's token and address, so it is admitted, scoped, limited and answered exactly as the
//! same request from the agent would be.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, HeaderMap, HeaderValue, Method, Request},
    Router,
};
use serde_json::Value;
use tower::ServiceExt;

/// The largest answer a tool reads (lists are paged well below it).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// A refusal, as the API's problem document says it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    pub title: String,
    pub code: String,
    pub detail: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.title, self.status, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// The API as one agent's requests reach it.
#[derive(Clone)]
pub struct Rest {
    api: Router,
    /// The agent's `Authorization`, and `X-Forwarded-For` if it came through a proxy.
    headers: HeaderMap,
    peer: SocketAddr,
}

impl Rest {
    /// For the MCP request with these `headers`, from `peer`.
    pub fn new(api: Router, from: &HeaderMap, peer: SocketAddr) -> Self {
        let mut headers = HeaderMap::new();
        for name in [
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-forwarded-for"),
        ] {
            if let Some(value) = from.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        Self { api, headers, peer }
    }

    pub async fn get(&self, path: &str) -> Result<Value, Problem> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Problem> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, Problem> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// `method path` with `body` as JSON; the answer's JSON (`null` when it has none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Problem> {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let body = match body {
            Some(body) => {
                request = request.header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Body::from(serde_json::to_vec(body).expect("JSON values serialise"))
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(|e| internal(e.to_string()))?;
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let value = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        if status.is_success() {
            return Ok(value);
        }
        let text = |field: &str| value[field].as_str().map(str::to_string);
        Err(Problem {
            status: status.as_u16(),
            title: text("title")
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").into()),
            code: text("code").unwrap_or_else(|| "error".into()),
            detail: text("detail"),
        })
    }
}

fn internal(detail: String) -> Problem {
    tracing::error!(error = %detail, "an MCP tool's call to the API failed");
    Problem {
        status: 500,
        title: "Internal Server Error".into(),
        code: "internal".into(),
        detail: None,
    }
}
