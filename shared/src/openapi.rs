//! The answers every operation shares, documented in one place.
//!
//! Each operation's `#[utoipa::path]` lists what its handler decides (201, 404, 409, 412, 403...).
//! What a layer below or in front of the handler answers is added here, from the shape of the
//! operation, so the document cannot forget it:
//! - [`service_document`] (every service's `/openapi.json`): a JSON request body can be refused
//!   by [`JsonBody`](crate::problem::JsonBody) with 400 (not JSON, wrong shape), 413 (too large)
//!   or 415 (not `application/json`); query parameters by `Query` with 400; a path segment that
//!   is not UTF-8 by `Path` with 400.
//! - The gateway adds what it answers itself (401, 429, 503...) with [`add_problem`] when it
//!   merges the services' documents.
//! - Every operation gets an id unique across the merged document ([`operation_id`]).
//! - Every answer whose body is [`ProblemBody`] is documented as `application/problem+json`,
//!   which is what [`ApiError`](crate::ApiError) sends ([`problem_content_types`]).
//!
//! The document is handled as JSON (`serde_json::Value`), the form the gateway merges.

use serde_json::{json, Map, Value};

use crate::problem::{ProblemBody, PROBLEM_JSON};

/// Where the problem schema lives in a document.
pub const PROBLEM_REF: &str = "#/components/schemas/ProblemBody";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A service's part of the API description as it serves it: its own operations plus the
/// answers its extractors give, every problem answer under `application/problem+json`.
pub fn service_document(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serializes");
    if !doc["components"].is_object() {
        doc["components"] = json!({});
    }
    if !doc["components"]["schemas"].is_object() {
        doc["components"]["schemas"] = json!({});
    }
    doc["components"]["schemas"]
        .as_object_mut()
        .expect("schemas is an object")
        .entry("ProblemBody")
        .or_insert_with(problem_schema);
    for_each_operation(&mut doc, |path, method, op| {
        op["operationId"] = operation_id(method, path).into();
        if takes_json_body(op) {
            add_problem(
                op,
                400,
                "The body is not JSON, or not of the documented shape (wrong types, missing or \
                 unknown fields)",
            );
            add_problem(op, 413, "The body is larger than the limit");
            add_problem(op, 415, "The body is not sent as `application/json`");
        }
        if has_parameters_in(op, "query") {
            add_problem(op, 400, "A query parameter is malformed or unknown");
        }
        if has_parameters_in(op, "path") {
            add_problem(op, 400, "A path segment is not valid UTF-8");
        }
    });
    problem_content_types(&mut doc);
    doc
}

/// An operation id unique across the merged document, from the method and path:
/// `get /api/v1/tasks/{id}/attempts` is `get_tasks_id_attempts` (utoipa's default, the handler's
/// name, repeats across services: `list`, `create`, `read`).
pub fn operation_id(method: &str, path: &str) -> String {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut id = method.to_string();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !word.is_empty() {
            id.push('_');
            id.push_str(word);
        }
    }
    id
}

/// The JSON schema of [`ProblemBody`].
pub fn problem_schema() -> Value {
    serde_json::to_value(<ProblemBody as utoipa::PartialSchema>::schema())
        .expect("a schema serializes")
}

/// Calls `f(path, method, operation)` for every operation of `doc`.
pub fn for_each_operation(doc: &mut Value, mut f: impl FnMut(&str, &str, &mut Value)) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if METHODS.contains(&method.as_str()) && op.is_object() {
                f(path, method, op);
            }
        }
    }
}

/// Documents `status` with a problem body on `op`, unless the operation documents that status
/// itself (its own description is the more precise one).
pub fn add_problem(op: &mut Value, status: u16, description: &str) {
    if !op["responses"].is_object() {
        op["responses"] = json!({});
    }
    let responses = op["responses"].as_object_mut().expect("an object");
    responses
        .entry(status.to_string())
        .or_insert_with(|| problem_response(description));
}

/// A response with a problem document.
pub fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { PROBLEM_JSON: { "schema": { "$ref": PROBLEM_REF } } }
    })
}

/// Whether `op` takes a JSON request body.
pub fn takes_json_body(op: &Value) -> bool {
    op["requestBody"]["content"]["application/json"].is_object()
}

/// Whether `op` has a parameter `in` this place (`query`, `path`, `header`).
pub fn has_parameters_in(op: &Value, place: &str) -> bool {
    op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
}

/// Moves every response body that is a [`ProblemBody`] from `application/json` (what utoipa
/// writes for `body = ProblemBody`) to `application/problem+json` (what is sent).
pub fn problem_content_types(doc: &mut Value) {
    for_each_operation(doc, |_, _, op| {
        // `get_mut`, not `[]`: indexing a `Value` mutably inserts `null` for a missing key.
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            return;
        };
        for response in responses.values_mut() {
            let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) else {
                continue;
            };
            let is_problem = content
                .get("application/json")
                .is_some_and(|media| media["schema"]["$ref"] == PROBLEM_REF);
            if is_problem {
                let media = content.remove("application/json").expect("present");
                content.insert(PROBLEM_JSON.to_string(), media);
            }
        }
    });
}

/// An optional request header parameter.
pub fn header_parameter(name: &str, description: &str, schema: Value) -> Value {
    let mut parameter = Map::new();
    parameter.insert("name".into(), name.into());
    parameter.insert("in".into(), "header".into());
    parameter.insert("required".into(), false.into());
    parameter.insert("description".into(), description.into());
    parameter.insert("schema".into(), schema);
    Value::Object(parameter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(create, list))]
    struct Doc;

    #[derive(serde::Deserialize, utoipa::ToSchema)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
    }

    #[utoipa::path(post, path = "/things", request_body = Thing,
        responses((status = 201, description = "Created"), (status = 204, description = "Nothing"),
            (status = 400, description = "A name we refuse", body = ProblemBody)))]
    #[allow(dead_code)]
    fn create() {}

    #[utoipa::path(get, path = "/things", params(("limit" = Option<u32>, Query, description = "At most")),
        responses((status = 200, description = "Things")))]
    #[allow(dead_code)]
    fn list() {}

    #[test]
    fn extractor_answers_are_added_as_problem_documents() {
        let doc = service_document(<Doc as utoipa::OpenApi>::openapi());
        let create = &doc["paths"]["/things"]["post"]["responses"];
        for status in ["413", "415"] {
            assert_eq!(
                create[status]["content"][PROBLEM_JSON]["schema"]["$ref"], PROBLEM_REF,
                "{status}: {create}"
            );
        }
        // The operation's own description wins, under the problem content type.
        assert_eq!(create["400"]["description"], "A name we refuse");
        assert!(create["400"]["content"]["application/json"].is_null());
        assert!(create["400"]["content"][PROBLEM_JSON].is_object());
        let list = &doc["paths"]["/things"]["get"]["responses"];
        assert!(list["400"].is_object(), "{list}");
        assert!(list["415"].is_null(), "no body, no 415: {list}");
        assert!(doc["components"]["schemas"]["ProblemBody"].is_object());
        assert_eq!(doc["paths"]["/things"]["get"]["operationId"], "get_things");
        assert!(
            create["204"].get("content").is_none(),
            "no body stays no body: {create}"
        );
    }
}
