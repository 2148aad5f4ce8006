//! The API description: `GET /openapi.json` merges the OpenAPI 3.1 documents every service
//! generates from its code (`<service>/openapi.json`), and `/docs` serves Swagger UI (bundled in
//! the binary, no download) on top of it, with "Authorize" for a bearer token.
//!
//! A service that is down while the document is built is left out and named in
//! `x-taskmesh-unavailable`; the rest is still served.

use std::time::Duration;

use axum::{extract::State, routing::get, Json, Router};
use serde_json::{json, Map, Value};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;

/// The services that own parts of the API.
const PARTS: [&str; 4] = ["user-svc", "task-svc", "notify-svc", "media-svc"];

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// Swagger UI at `/docs`, reading `/openapi.json`.
pub fn swagger_ui() -> Router {
    let config = Config::from("/openapi.json")
        .try_it_out_enabled(true)
        .persist_authorization(true);
    Router::from(SwaggerUi::new("/docs").config(config))
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    let fetches = PARTS.iter().map(|service| {
        let url = format!("{}/openapi.json", state.upstream(service));
        let http = state.http.clone();
        async move {
            let doc = http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .and_then(|r| r.error_for_status());
            match doc {
                Ok(response) => (*service, response.json::<Value>().await.ok()),
                Err(_) => (*service, None),
            }
        }
    });
    let parts = futures::future::join_all(fetches).await;
    Json(merge(parts))
}

/// One document from the services' parts, with the bearer scheme the gateway checks.
pub fn merge(parts: Vec<(&str, Option<Value>)>) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut tags = Vec::new();
    let mut unavailable = Vec::new();
    for (service, doc) in parts {
        let Some(doc) = doc else {
            unavailable.push(service);
            continue;
        };
        if let Some(p) = doc["paths"].as_object() {
            paths.extend(p.clone());
        }
        if let Some(s) = doc["components"]["schemas"].as_object() {
            schemas.extend(s.clone());
        }
        if let Some(t) = doc["tags"].as_array() {
            tags.extend(t.iter().cloned());
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Taskmesh API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every route of every Taskmesh service, through the gateway. \
                Log in with POST /api/v1/auth/login, then Authorize with the access token. \
                Errors are application/problem+json with a stable `code`.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            }
        },
        "tags": tags,
        "x-taskmesh-unavailable": unavailable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_merge_and_missing_services_are_named() {
        let user = json!({
            "paths": { "/api/v1/users/me": { "get": {} } },
            "components": { "schemas": { "User": { "type": "object" } } },
            "tags": [{ "name": "users" }]
        });
        let merged = merge(vec![("user-svc", Some(user)), ("task-svc", None)]);
        assert!(merged["paths"]["/api/v1/users/me"]["get"].is_object());
        assert!(merged["components"]["schemas"]["User"].is_object());
        assert_eq!(
            merged["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(merged["x-taskmesh-unavailable"], json!(["task-svc"]));
        assert_eq!(merged["openapi"], "3.1.0");
    }
}
