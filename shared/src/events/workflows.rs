//! Workflows' events (issue 27): one when a workflow is created and one when it ends, all with
//! the same fields ([`WorkflowFields`]). Published by task-svc; shown to the owner on the live
//! stream.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::envelope::EventPayload;

/// What every workflow event says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkflowFields {
    pub workflow_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// How many steps it has.
    pub steps: usize,
    /// The ids of its steps that did not succeed (dead, cancelled, skipped; in
    /// `workflow.cancelled`, also those that had not ended).
    pub failed_steps: Vec<String>,
}

macro_rules! workflow_event {
    ($(#[$doc:meta])* $name:ident, $type:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(transparent)]
        pub struct $name(pub WorkflowFields);

        impl EventPayload for $name {
            const TYPE: &'static str = $type;
            fn subject(&self) -> String {
                self.0.workflow_id.to_string()
            }
        }
    };
}

workflow_event!(
    /// A workflow was created; the steps that need nothing are dispatched.
    WorkflowCreated,
    "workflow.created"
);
workflow_event!(
    /// Every step of a workflow succeeded.
    WorkflowCompleted,
    "workflow.completed"
);
workflow_event!(
    /// Every step of a workflow ended, and some did not succeed.
    WorkflowFailed,
    "workflow.failed"
);
workflow_event!(
    /// A workflow was cancelled: nothing more of it runs.
    WorkflowCancelled,
    "workflow.cancelled"
);
