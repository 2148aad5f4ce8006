//! Moving a workflow on, in the transaction that ended one of its steps (a report batch, a
//! cancel) or created it: under the workflow's row lock, its steps' statuses decide
//! ([`crate::domain::workflow_plan::plan`]) which waiting steps are skipped, which are dispatched
//! with their inputs, and whether it is over. A step's task is locked before its workflow,
//! always in that order.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        status::Status,
        task::Task,
        workflow::WorkflowStatus,
        workflow_plan::{plan, StepNow},
    },
    store::{self, workflows::StepRow},
};

/// After `touched` tasks changed: moves on the workflows of those that ended. Returns the tasks
/// it changed in turn (released or skipped steps).
pub async fn after_changes(
    tx: &mut PgConnection,
    touched: &[Task],
) -> Result<Vec<Task>, sqlx::Error> {
    let ended: Vec<Uuid> = touched
        .iter()
        .filter(|t| {
            matches!(
                t.status,
                Status::Completed | Status::Dead | Status::Cancelled
            )
        })
        .map(|t| t.id)
        .collect();
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let mut workflows = store::workflows::of_tasks(tx, &ended).await?;
    // One order for every transaction that locks several.
    workflows.sort_unstable();
    let mut changed = Vec::new();
    for id in workflows {
        changed.extend(advance(tx, id).await?);
    }
    Ok(changed)
}

/// What a step is handed of the need at `need`: its result, or what became of it.
fn input_of(need: &StepRow) -> Value {
    match (need.status, need.skipped) {
        (Status::Completed, false) => need.result.clone().unwrap_or(Value::Null),
        (status, skipped) => json!({
            "status": crate::domain::workflow_view::step_status(status, skipped),
            "error": need.last_error,
        }),
    }
}

/// Locks running workflow `id` and makes its next moves. Returns the tasks it changed.
pub async fn advance(tx: &mut PgConnection, id: Uuid) -> Result<Vec<Task>, sqlx::Error> {
    let Some(workflow) = store::workflows::find(tx, id, true).await? else {
        return Ok(Vec::new());
    };
    if workflow.status != WorkflowStatus::Running {
        return Ok(Vec::new());
    }
    let steps = store::workflows::steps(tx, id).await?;
    let position: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.step.as_str(), i))
        .collect();
    let now: Vec<StepNow> = steps
        .iter()
        .map(|s| StepNow {
            status: s.status,
            skipped: s.skipped,
            needs: s
                .needs
                .0
                .iter()
                .filter_map(|n| Some((*position.get(n.step.as_str())?, n.on_failure)))
                .collect(),
        })
        .collect();
    let next = plan(&now, workflow.max_parallel.map(|m| m.max(1) as u32));
    let mut touched = Vec::new();
    if !next.skip.is_empty() {
        let skipped: Vec<Uuid> = next.skip.iter().map(|&i| steps[i].task_id).collect();
        store::workflows::mark_skipped(tx, &skipped).await?;
        for task_id in skipped {
            let Some(mut task) = store::tasks::find(tx, task_id, true).await? else {
                continue;
            };
            store::reports::finish_cancelled(tx, task_id, chrono::Utc::now()).await?;
            store::jobs::set_status(tx, &mut task, Status::Cancelled).await?;
            touched.push(task);
        }
    }
    for &i in &next.release {
        let mut inputs = Map::new();
        for &(need, _) in &now[i].needs {
            inputs.insert(steps[need].step.clone(), input_of(&steps[need]));
        }
        store::workflows::set_inputs(tx, steps[i].task_id, &Value::Object(inputs)).await?;
        let Some(mut task) = store::tasks::find(tx, steps[i].task_id, true).await? else {
            continue;
        };
        store::jobs::set_status(tx, &mut task, Status::Queued).await?;
        crate::service::jobs::dispatch(tx, &task, 1, None, true).await?;
        touched.push(task);
    }
    if let Some(status) = next.finished {
        store::workflows::set_status(tx, id, status).await?;
        tracing::info!(workflow_id = %id, status = status.as_str(), "workflow ended");
    }
    Ok(touched)
}
