//! task-svc's routes for other services, as both sides use them: the paths, the limit and the
//! request and answer types. Clients never reach them (the gateway routes only `/api/v1/...`).

use std::collections::BTreeMap;

use uuid::Uuid;

/// `GET`: what the user a service acts for may do with a task (media-svc asks it).
pub const ACCESS_ROUTE: &str = "/internal/v1/tasks/{id}/access";

/// [`ACCESS_ROUTE`] for task `id`.
pub fn access_path(id: Uuid) -> String {
    format!("/internal/v1/tasks/{id}/access")
}

/// The answer of [`ACCESS_ROUTE`]: `read` (see it, its attachments), `edit` (change every field,
/// delete it, attach and delete files).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskAccess {
    pub task_id: Uuid,
    pub read: bool,
    pub edit: bool,
}

/// `POST`: who may see each of some tasks now (the gateway's live stream asks it).
pub const AUDIENCE_PATH: &str = "/internal/v1/tasks/audience";

/// Most tasks one [`AudienceQuery`] may name.
pub const MAX_AUDIENCE_TASKS: usize = 500;

/// The question to [`AUDIENCE_PATH`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudienceQuery {
    pub task_ids: Vec<Uuid>,
}

/// Each existing task's audience, sorted; a task that is gone is absent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Audiences {
    pub audiences: BTreeMap<Uuid, Vec<Uuid>>,
}
