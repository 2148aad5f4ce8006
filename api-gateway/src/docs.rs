//! The API description: `GET /openapi.json` merges the OpenAPI 3.1 documents every service
//! generates from its code (`<service>/openapi.json`), and `/docs` serves Swagger UI (bundled in
//! the binary, no download) on top of it, with "Authorize" for a bearer token.
//!
//! A service that is down while the document is built is left out and named in
//! `x-taskmesh-unavailable`; the rest is still served.
//!
//! The services' parts document what their handlers and extractors answer
//! ([`shared::openapi::service_document`]); [`gateway_answers`] adds what the gateway itself
//! answers in front of them, from the routing table: 401 (token, session), 429 (rate limits),
//! 503/504 (the service), 413 (body limit) and the `Idempotency-Key` answers on POST.

use std::time::Duration;

use axum::{extract::State, http::Method, routing::get, Json, Router};
use serde_json::{json, Map, Value};
use utoipa_swagger_ui::{Config, SwaggerUi};

use shared::internal::{Caller, Payload, HEADER_ASSERTION};

use crate::{routes, AppState};

/// The services that own parts of the API.
const PARTS: [&str; 4] = ["user-svc", "task-svc", "notify-svc", "media-svc"];

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

/// Swagger UI's Content Security Policy: its scripts and styles from this origin only (it sets
/// inline styles, and draws icons from `data:` images), calls to this origin only, and never
/// inside another site's frame.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// Swagger UI at `/docs`, reading `/openapi.json`, under [`DOCS_CSP`].
pub fn swagger_ui() -> Router {
    let config = Config::from("/openapi.json")
        .try_it_out_enabled(true)
        .persist_authorization(true);
    Router::from(SwaggerUi::new("/docs").config(config)).layer(axum::middleware::map_response(
        |mut response: axum::response::Response| async move {
            crate::dashboard::protect(response.headers_mut(), DOCS_CSP);
            response
        },
    ))
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state).await)
}

/// The merged document, its parts fetched from the services now (also the MCP tools' schemas).
pub async fn document(state: &AppState) -> Value {
    let fetches = PARTS.iter().map(|service| {
        let url = format!("{}/openapi.json", state.upstream(service));
        let http = state.http.clone();
        let caller = Caller::anonymous(crate::SERVICE, None);
        let assertion = state.trust.mint(
            service,
            &Method::GET,
            "/openapi.json",
            Payload::EMPTY,
            &caller,
        );
        async move {
            let doc = http
                .get(url)
                .header(HEADER_ASSERTION, assertion)
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
    merge(parts)
}

/// One document from the services' parts, with the bearer scheme the gateway checks.
pub fn merge(parts: Vec<(&str, Option<Value>)>) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut tags = Vec::new();
    let mut unavailable = Vec::new();
    // The gateway's own routes (the live stream) are one more part.
    let own = serde_json::to_value(<crate::stream::StreamDoc as utoipa::OpenApi>::openapi())
        .expect("the stream's document serialises");
    for (service, doc) in parts.into_iter().chain([(crate::SERVICE, Some(own))]) {
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
    paths.insert("/api/v1/me/overview".into(), overview_path());
    paths.insert("/api/v1/users/search".into(), search_path());

    tags.push(json!({ "name": "overview", "description": "One call across services" }));
    let mut doc = json!({
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
    });
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        schemas
            .entry("ProblemBody")
            .or_insert_with(shared::openapi::problem_schema);
    }
    gateway_answers(&mut doc);
    doc
}

/// Adds to every routed operation what the gateway answers before (or instead of) the service:
/// the security the routing table enforces, 401 for a missing, invalid or expired token or an
/// ended session, 429 past the rate limit, 503 when the service (or, to verify a token,
/// user-svc's keys) is unavailable, 504 when it is too slow, 413 past the body limit, and on POST
/// the `Idempotency-Key` header with its 400, 409 and 422 (but uploads, which stream through).
pub fn gateway_answers(doc: &mut Value) {
    shared::openapi::for_each_operation(doc, |path, method, op| {
        let Some(route) = routes::route_for(path) else {
            // The gateway's own routes (the stream, the overview, the person search).
            if op.get("security").is_some() {
                scope_note(op, method, path);
            }
            return;
        };
        let add = shared::openapi::add_problem;
        if route.public {
            if let Some(op) = op.as_object_mut() {
                op.remove("security");
            }
            add(
                op,
                429,
                "More requests from this IP than the public routes' rate limit allows; see \
                 Retry-After",
            );
        } else {
            op["security"] = if route.streamed && path.ends_with("/content") {
                // A download takes a bearer token or a signed link's query instead.
                json!([{ "bearer": [] }, {}])
            } else {
                json!([{ "bearer": [] }])
            };
            add(
                op,
                401,
                "No bearer token, or one that is invalid or expired, or whose session has ended",
            );
            scope_note(op, method, path);
            add(
                op,
                429,
                "More requests than the caller's rate limit allows; see Retry-After",
            );
        }
        add(
            op,
            503,
            "The service that owns this route is unavailable (or a dependency it needs); the \
             detail names it",
        );
        add(
            op,
            504,
            "The service that owns this route did not answer in time",
        );
        if op.get("requestBody").is_some() && !route.streamed {
            add(
                op,
                413,
                "The body is larger than the gateway's limit (1 MiB)",
            );
        }
        // Uploads stream through and are not kept for replay; tokens are never kept.
        if method == "post" && !route.streamed && !route.credentials {
            idempotency_answers(op);
        }
    });
    shared::openapi::problem_content_types(doc);
}

/// What a personal access token needs for `method path` ([`crate::scopes`]), in
/// `x-taskmesh-scope`, and the 403 for one without it.
fn scope_note(op: &mut Value, method: &str, path: &str) {
    let verb = Method::from_bytes(method.to_uppercase().as_bytes());
    let needs = verb.map(|verb| crate::scopes::need(&verb, path));
    op["x-taskmesh-scope"] = match needs {
        Ok(crate::scopes::Need::Scope(scope)) => json!(scope.as_str()),
        Ok(crate::scopes::Need::Both(one, other)) => json!(format!("{one} {other}")),
        Ok(crate::scopes::Need::Any) => json!("any"),
        _ => json!("session"),
    };
    shared::openapi::add_problem(
        op,
        403,
        "A personal access token without the scope this route needs (`insufficient_scope`, \
         naming it; `x-taskmesh-scope`), or on a route only a signed-in session may use \
         (`session_required`)",
    );
}

/// `Idempotency-Key` on a POST: the header and what the gateway answers for it.
fn idempotency_answers(op: &mut Value) {
    if !op["parameters"].is_array() {
        op["parameters"] = json!([]);
    }
    let parameters = op["parameters"].as_array_mut().expect("an array");
    if !parameters.iter().any(|p| p["name"] == "Idempotency-Key") {
        parameters.push(shared::openapi::header_parameter(
            "Idempotency-Key",
            "The same key and body within 24 hours replay the first answer \
             (`Idempotent-Replayed: true`); keys are per caller and path",
            json!({ "type": "string", "minLength": 1, "maxLength": 255 }),
        ));
    }
    let add = shared::openapi::add_problem;
    add(
        op,
        400,
        "A malformed Idempotency-Key (blank, or over 255 characters)",
    );
    add(
        op,
        409,
        "A request with this Idempotency-Key is still running; see Retry-After",
    );
    add(
        op,
        422,
        "This Idempotency-Key was used with a different request body",
    );
}

/// `GET /api/v1/me/overview`, which the gateway answers itself.
fn overview_path() -> Value {
    let problem = shared::openapi::problem_response;
    let part = |properties: Value| json!({ "type": ["object", "null"], "properties": properties });
    json!({
        "get": {
            "tags": ["overview"],
            "summary": "The caller's profile, task counts and unread notifications in one call",
            "description": "A part whose service is down is null and named in `unavailable`.",
            "operationId": shared::openapi::operation_id("get", "/api/v1/me/overview"),
            "responses": {
                "200": {
                    "description": "The overview",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["profile", "tasks", "notifications", "unavailable"],
                        "properties": {
                            "profile": { "type": ["object", "null"] },
                            "tasks": part(json!({
                                "total": { "type": "integer", "minimum": 0 },
                                "by_status": {
                                    "type": "object",
                                    "additionalProperties": { "type": "integer", "minimum": 0 }
                                }
                            })),
                            "notifications": part(json!({
                                "unread": { "type": "integer", "minimum": 0 }
                            })),
                            "unavailable": { "type": "array", "items": { "type": "string" } }
                        }
                    } } }
                },
                "401": problem("No bearer token, or one that is invalid or expired, or whose session has ended"),
                "429": problem("More requests than the caller's rate limit allows; see Retry-After"),
                "503": problem("user-svc's signing keys could not be fetched to verify the token"),
            },
            "security": [{ "bearer": [] }]
        }
    })
}

/// `GET /api/v1/users/search`, which the gateway answers from task-svc and user-svc.
fn search_path() -> Value {
    let problem = shared::openapi::problem_response;
    let person = json!({
        "type": "object",
        "required": ["id", "display_name", "active"],
        "properties": {
            "id": { "type": "string", "format": "uuid" },
            "display_name": { "type": "string" },
            "active": { "type": "boolean" }
        }
    });
    json!({
        "get": {
            "tags": ["people"],
            "summary": "Find a person to assign or mention: by name among people who share a channel with the caller (anyone for an admin), or anyone by exact email",
            "description": "The exact address's person first, then names (best match first), at most 21 people.",
            "operationId": shared::openapi::operation_id("get", "/api/v1/users/search"),
            "parameters": [{
                "name": "q", "in": "query", "required": true,
                "description": "Part of a name, or a whole email address (1 to 100 characters)",
                "schema": { "type": "string", "minLength": 1, "maxLength": 100 }
            }],
            "responses": {
                "200": {
                    "description": "The people found",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["items"],
                        "properties": { "items": { "type": "array", "items": person } }
                    } } }
                },
                "400": problem("q is missing, empty, longer than 100 characters or more than one line"),
                "401": problem("No bearer token, or one that is invalid or expired, or whose session has ended"),
                "429": problem("More requests than the caller's rate limit allows; see Retry-After"),
                "503": problem("task-svc, which knows who shares a channel with whom, is down"),
            },
            "security": [{ "bearer": [] }]
        }
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

    #[test]
    fn the_gateway_documents_what_it_answers_itself() {
        let problem = |description: &str| shared::openapi::problem_response(description);
        let part = json!({
            "paths": {
                "/api/v1/tasks": { "post": {
                    "requestBody": { "content": { "application/json": { "schema": {} } } },
                    "responses": { "201": { "description": "Created" } }
                } },
                "/api/v1/auth/login": { "post": {
                    "responses": { "503": problem("user-svc or Redis unavailable") }
                } }
            }
        });
        let merged = merge(vec![("task-svc", Some(part))]);
        let task = &merged["paths"]["/api/v1/tasks"]["post"];
        assert_eq!(task["security"], json!([{ "bearer": [] }]));
        for status in ["401", "409", "413", "422", "429", "503", "504"] {
            let schema = &task["responses"][status]["content"]["application/problem+json"];
            assert_eq!(
                schema["schema"]["$ref"],
                shared::openapi::PROBLEM_REF,
                "{status}"
            );
        }
        assert_eq!(task["parameters"][0]["name"], "Idempotency-Key");
        let login = &merged["paths"]["/api/v1/auth/login"]["post"];
        assert!(login["responses"]["401"].is_null(), "a public route");
        assert!(login["responses"]["429"].is_object());
        assert_eq!(
            login["responses"]["503"]["description"], "user-svc or Redis unavailable",
            "the operation's own description wins"
        );
        assert!(merged["components"]["schemas"]["ProblemBody"].is_object());
        assert!(merged["paths"]["/api/v1/me/overview"]["get"]["responses"]["401"].is_object());
    }
}
