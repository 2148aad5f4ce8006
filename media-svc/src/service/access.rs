//! Who may do what with a task's files, asked of task-svc (decision 27): whoever may see the task
//! may list and download its files; whoever may edit it may upload and delete them.

use std::sync::Arc;
use std::time::Duration;

use shared::{
    calls::{CallError, Service},
    identity::Identity,
    internal::{Caller, Trust},
    tasks_api::TaskAccess,
};
use uuid::Uuid;

/// How long task-svc may take to answer.
const ASK_WITHIN: Duration = Duration::from_secs(10);

/// What the caller may do with a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Cannot see it (or it does not exist): every answer about it is a 404.
    None,
    Read,
    Edit,
}

#[derive(Debug, thiserror::Error)]
#[error("task-svc could not be asked: {0}")]
pub struct Unavailable(String);

#[derive(Clone)]
pub struct Tasks {
    http: reqwest::Client,
    base: String,
    /// Makes the assertion each question carries (decision 28).
    trust: Arc<Trust>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").field("base", &self.base).finish()
    }
}

impl Tasks {
    pub fn new(task_url: &str, trust: Arc<Trust>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            http,
            base: task_url.trim_end_matches('/').to_string(),
            trust,
        }
    }

    /// What `identity` may do with task `task_id`, as task-svc decides it now.
    pub async fn access(&self, identity: &Identity, task_id: Uuid) -> Result<Access, Unavailable> {
        let task_svc = Service {
            http: &self.http,
            trust: &self.trust,
            name: "task-svc",
            base: &self.base,
        };
        let caller = Caller::user(self.trust.service(), identity.clone(), None);
        let path = shared::tasks_api::access_path(task_id);
        let asked = task_svc.get::<TaskAccess>(&path, &caller, ASK_WITHIN).await;
        match asked {
            Ok(answer) => Ok(match (answer.read, answer.edit) {
                (_, true) => Access::Edit,
                (true, false) => Access::Read,
                _ => Access::None,
            }),
            Err(CallError::NotFound) => Ok(Access::None),
            Err(err) => Err(Unavailable(err.to_string())),
        }
    }
}
