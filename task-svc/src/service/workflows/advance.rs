//! Moving a workflow on, in the transaction that ended one of its steps (a report batch, a
//! cancel) or created it: under the workflow's row lock, its steps' statuses decide
//! ([`crate::domain::workflow_plan::plan`]) which waiting steps are skipped, which are dispatched
//! with their inputs (or, for a map step, expanded into its runs), and whether it is over. A
//! step's task is locked before its workflow, always in that order.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use shared::config::JobsConfig;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        status::Status,
        task::Task,
        workflow::WorkflowStatus,
        workflow_plan::{elements, plan, Plan, StepNow},
    },
    error::TaskError,
    store::{self, workflows::StepRow},
};

/// After `touched` tasks changed: moves on `workflows` and those of the tasks that ended.
/// Returns the tasks it changed in turn (released, expanded or skipped steps).
pub async fn after_changes(
    tx: &mut PgConnection,
    config: &JobsConfig,
    touched: &[Task],
    mut workflows: Vec<Uuid>,
) -> Result<Vec<Task>, TaskError> {
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
    if !ended.is_empty() {
        workflows.extend(store::workflows::of_tasks(tx, &ended).await?);
    }
    if workflows.is_empty() {
        return Ok(Vec::new());
    }
    // One order for every transaction that locks several.
    workflows.sort_unstable();
    workflows.dedup();
    let mut changed = Vec::new();
    for id in workflows {
        changed.extend(advance(tx, config, id).await?);
    }
    Ok(changed)
}

/// The ids of `steps` that did not succeed (or have not yet).
pub fn failed(steps: &[StepRow]) -> Vec<String> {
    steps
        .iter()
        .filter(|s| s.skipped || s.status != Status::Completed)
        .map(|s| s.step.clone())
        .collect()
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

/// Locks running workflow `id` and makes its next moves until none is left. Returns the tasks
/// it changed.
pub async fn advance(
    tx: &mut PgConnection,
    config: &JobsConfig,
    id: Uuid,
) -> Result<Vec<Task>, TaskError> {
    let Some(workflow) = store::workflows::find(tx, id, true).await? else {
        return Ok(Vec::new());
    };
    if workflow.status != WorkflowStatus::Running {
        return Ok(Vec::new());
    }
    let mut touched = Vec::new();
    // A move can end a step at once (a map over nothing, or over what is not an array): then
    // the steps are read and planned again.
    loop {
        let steps = store::workflows::steps(tx, id).await?;
        if finish_maps(tx, id, &steps, &mut touched).await? {
            continue;
        }
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
        if apply(tx, config, id, &steps, &now, &next, &mut touched).await? {
            continue;
        }
        if let Some(status) = next.finished {
            let steps = store::workflows::steps(tx, id).await?;
            let ended = store::workflows::set_status(tx, id, status).await?;
            let event = crate::domain::events::workflow(&ended, steps.len(), failed(&steps))?;
            shared::outbox::enqueue_all(tx, vec![event]).await?;
            tracing::info!(workflow_id = %id, status = status.as_str(), "workflow ended");
        }
        return Ok(touched);
    }
}

/// Ends the expanded map steps whose runs have all ended. Returns whether it ended any.
async fn finish_maps(
    tx: &mut PgConnection,
    id: Uuid,
    steps: &[StepRow],
    touched: &mut Vec<Task>,
) -> Result<bool, TaskError> {
    let expanded = |s: &&StepRow| s.map.is_some() && s.status == Status::Running;
    if !steps.iter().any(|s| expanded(&s)) {
        return Ok(false);
    }
    let runs: HashMap<String, (i64, i64, i64)> = store::workflows::map_runs(tx, id)
        .await?
        .into_iter()
        .map(|(step, all, ended, failed)| (step, (all, ended, failed)))
        .collect();
    let mut finished = false;
    for step in steps.iter().filter(expanded) {
        let (all, ended, failed) = runs.get(&step.step).copied().unwrap_or((0, 0, 0));
        if ended < all {
            continue;
        }
        let error = (failed > 0).then(|| format!("{failed} of its {all} runs did not succeed"));
        end_step(tx, id, step, error.as_deref(), touched).await?;
        finished = true;
    }
    Ok(finished)
}

/// Ends step `step` without a run of its own: completed with its map runs' results (in order),
/// or dead with `error` (a map over what is not an array, inputs too large).
async fn end_step(
    tx: &mut PgConnection,
    id: Uuid,
    step: &StepRow,
    error: Option<&str>,
    touched: &mut Vec<Task>,
) -> Result<(), TaskError> {
    let Some(task) = store::tasks::find(tx, step.task_id, true).await? else {
        return Ok(());
    };
    store::workflows::finish_map(tx, id, &step.step, step.task_id, error).await?;
    let status = match error {
        None => Status::Completed,
        Some(_) => Status::Dead,
    };
    touched.push(end_task(tx, &task, status).await?);
    Ok(())
}

/// Saves `task` in `status` as the platform's doing, with the events of that change (which the
/// live stream shows).
async fn end_task(tx: &mut PgConnection, task: &Task, status: Status) -> Result<Task, TaskError> {
    let mut after = task.clone();
    after.status = status;
    let changes = crate::domain::task::status_change(task, &after);
    crate::service::tasks::save(tx, &after, Uuid::nil(), changes).await
}

/// `items` if their runs keep the owner within `jobs.member_max_live_jobs` (admins included: a
/// map's size is known only now).
async fn within_quota(
    tx: &mut PgConnection,
    task: &Task,
    items: Result<Vec<Value>, String>,
    config: &JobsConfig,
) -> Result<Result<Vec<Value>, String>, TaskError> {
    let Ok(items) = items else { return Ok(items) };
    let (_, live) = store::jobs::live_counts(tx, task.owner_id).await?;
    let max = i64::from(config.member_max_live_jobs);
    if live + items.len() as i64 > max {
        return Ok(Err(format!(
            "its {} runs and the owner's {live} live jobs would pass the quota of {max} \
             (jobs.member_max_live_jobs)",
            items.len()
        )));
    }
    Ok(Ok(items))
}

/// Applies `next` (skips and releases). Returns whether a step ended on the spot.
async fn apply(
    tx: &mut PgConnection,
    config: &JobsConfig,
    id: Uuid,
    steps: &[StepRow],
    now: &[StepNow],
    next: &Plan,
    touched: &mut Vec<Task>,
) -> Result<bool, TaskError> {
    if !next.skip.is_empty() {
        let skipped: Vec<Uuid> = next.skip.iter().map(|&i| steps[i].task_id).collect();
        store::workflows::mark_skipped(tx, &skipped).await?;
        for task_id in skipped {
            let Some(task) = store::tasks::find(tx, task_id, true).await? else {
                continue;
            };
            store::reports::finish_cancelled(tx, task_id, chrono::Utc::now()).await?;
            touched.push(end_task(tx, &task, Status::Cancelled).await?);
        }
    }
    let mut ended = false;
    if !next.release.is_empty() {
        // The steps released here are what the workflow waits on: published at the commit.
        shared::outbox::wake_now(tx).await?;
    }
    for &i in &next.release {
        let step = &steps[i];
        let mapped = step.map.as_ref().map(|m| m.0.step.as_str());
        let mut inputs = Map::new();
        for &(need, _) in &now[i].needs {
            // A map's runs get their element as `item`, not the whole array again.
            if Some(steps[need].step.as_str()) != mapped {
                inputs.insert(steps[need].step.clone(), input_of(&steps[need]));
            }
        }
        let inputs = Value::Object(inputs);
        let size = serde_json::to_vec(&inputs).map_or(0, |b| b.len());
        if size > config.workflow_max_inputs_bytes {
            let error = format!(
                "its inputs are {size} bytes, more than jobs.workflow_max_inputs_bytes ({})",
                config.workflow_max_inputs_bytes
            );
            end_step(tx, id, step, Some(&error), touched).await?;
            ended = true;
            continue;
        }
        let Some(map) = &step.map else {
            // Queued with its inputs in one statement (none if a stop came first), then handed
            // its first dispatch.
            if let Some(released) = store::jobs::release(tx, step.task_id, &inputs).await? {
                crate::service::limits::dispatch_first_with(tx, &released.task, released.settings)
                    .await?;
                touched.push(released.task);
            }
            continue;
        };
        store::workflows::set_inputs(tx, step.task_id, &inputs).await?;
        // Checked again under its lock: a step stopped meanwhile (its owner deactivated) stays.
        let task = store::tasks::find(tx, step.task_id, true).await?;
        let Some(mut task) = task.filter(|t| t.status == Status::Pending) else {
            continue;
        };
        let source = steps.iter().find(|s| s.step == map.0.step);
        let result = source
            .filter(|s| s.status == Status::Completed)
            .and_then(|s| s.result.as_ref());
        let items = elements(&map.0, result, config.workflow_max_steps as usize);
        match within_quota(tx, &task, items, config).await? {
            Ok(items) if items.is_empty() => {
                store::jobs::set_status(tx, &mut task, Status::Running).await?;
                end_step(tx, id, step, None, touched).await?;
                ended = true;
            }
            Ok(items) => {
                touched.extend(
                    super::expand::expand(tx, id, &step.step, &mut task, &inputs, items).await?,
                );
            }
            Err(error) => {
                end_step(tx, id, step, Some(&error), touched).await?;
                ended = true;
            }
        }
    }
    Ok(ended)
}

/// Cancels `owner`'s running workflows inside `tx` (the owner was deactivated or deleted):
/// nothing more of them is released. Locked before their steps, as a release does; the caller
/// stops the steps, which are among the owner's live jobs.
pub async fn cancel_owned(tx: &mut PgConnection, owner: Uuid) -> Result<(), TaskError> {
    for row in store::workflows::cancel_owned(tx, owner).await? {
        let steps = store::workflows::steps(tx, row.id).await?;
        let event = crate::domain::events::workflow(&row, steps.len(), failed(&steps))?;
        shared::outbox::enqueue_all(tx, vec![event]).await?;
        tracing::info!(workflow_id = %row.id, %owner, "workflow cancelled with its owner");
    }
    Ok(())
}
