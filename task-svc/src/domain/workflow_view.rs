//! A workflow as clients send it and see it (`/api/v1/workflows`, issue 27).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{
    status::Status,
    task::Priority,
    workflow::{StepSpec, WorkflowStatus},
};

/// `POST /api/v1/workflows`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflow {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// The steps: `{"id", "needs": [id or {"step", "on_failure": "skip" | "continue"}], "job":
    /// {..}}`, each job as a task's (without `cron`, `run_at` or `unique_key`).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepSpec>,
    /// Most steps live (queued or running) at once; none by default.
    #[schema(minimum = 1, maximum = 10000)]
    pub max_parallel: Option<u32>,
    /// Every step's priority (default `normal`).
    pub priority: Option<Priority>,
}

/// A step: its task, where it stands, and what its job gave.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepView {
    pub id: String,
    /// The step's task (an automated task, with its job's runs at `/api/v1/tasks/{id}/attempts`).
    pub task_id: Uuid,
    /// `waiting` (for what it needs), `skipped`, or its job's status: `queued`, `running`,
    /// `retrying`, `completed`, `dead`, `cancelled`.
    pub status: String,
    pub needs: Vec<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Dispatches so far (1 during the first run).
    pub attempts: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A workflow's own fields.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Workflow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub status: WorkflowStatus,
    pub max_parallel: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A workflow and its steps, in the order sent.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowView {
    #[serde(flatten)]
    pub workflow: Workflow,
    /// Absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

/// A step's status as shown: `waiting`, `skipped`, or its task's.
pub fn step_status(status: Status, skipped: bool) -> String {
    match (status, skipped) {
        (_, true) => "skipped".into(),
        (Status::Pending, false) => "waiting".into(),
        (status, false) => status.as_str().into(),
    }
}
