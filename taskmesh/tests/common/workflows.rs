//! Workflows in tests: create one, wait for its end, find a step.

use serde_json::Value;
use shared::testkit::eventually;

use super::{App, WAIT};

impl App {
    /// Creates workflow `body` for `token`; returns it.
    pub async fn create_workflow(&self, token: &str, body: Value) -> Value {
        let (status, created) = self.post("/api/v1/workflows", Some(token), body).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    /// Waits (up to `deadline`) until workflow `id` is `status`; returns it.
    pub async fn wait_workflow_within(
        &self,
        token: &str,
        id: &str,
        status: &str,
        deadline: std::time::Duration,
    ) -> Value {
        eventually(&format!("workflow {id} is {status}"), deadline, || async {
            let (code, body) = self
                .get(&format!("/api/v1/workflows/{id}"), Some(token))
                .await;
            assert_eq!(code, 200, "{body}");
            (body["status"] == status).then_some(body)
        })
        .await
    }

    /// Waits until workflow `id` is `status`; returns it.
    pub async fn wait_workflow(&self, token: &str, id: &str, status: &str) -> Value {
        self.wait_workflow_within(token, id, status, WAIT).await
    }
}

/// Step `id` of `workflow`.
pub fn step_of<'a>(workflow: &'a Value, id: &str) -> &'a Value {
    workflow["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {workflow}"))
}
