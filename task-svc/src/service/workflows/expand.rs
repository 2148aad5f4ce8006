//! Map steps: a step that runs once per element of an array in another step's result, known
//! only when that step has run. Released, its own task becomes `running` and stands for the
//! whole; each element gets a task and job of its own (its runs), dispatched at once with the
//! element as `item`. Once every run has ended, the step completes with their results in order,
//! or dies if any did not succeed.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{job::ParsedJob, status::Status, task::Task, workflow::StepRun},
    error::TaskError,
    service::jobs::Inserted,
    store,
};

/// Starts map step `step` (task `parent`, locked) of workflow `id` over `items`, each run
/// handed `inputs`. Returns the tasks it wrote or changed.
pub async fn expand(
    tx: &mut PgConnection,
    id: Uuid,
    step: &str,
    parent: &mut Task,
    inputs: &Value,
    items: Vec<Value>,
) -> Result<Vec<Task>, TaskError> {
    store::jobs::set_status(tx, parent, Status::Running).await?;
    let n = items.len();
    let new = store::tasks::NewTasks {
        ids: (0..n).map(|_| Uuid::now_v7()).collect(),
        owner_id: parent.owner_id,
        titles: (0..n).map(|i| format!("{} [{i}]", parent.title)).collect(),
        descriptions: vec![String::new(); n],
        priorities: vec![parent.priority; n],
        due_at: vec![None; n],
        assignees: vec![None; n],
        tags: vec![parent.tags.clone(); n],
        channels: vec![parent.channel_id; n],
        sources: vec![parent.priority_source; n],
        statuses: vec![Status::Queued; n],
        parents: vec![None; n],
        recurrences: vec![None; n],
    };
    let mut rows: std::collections::HashMap<Uuid, Task> = store::tasks::insert_many(tx, &new)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let runs: Vec<Task> = new.ids.iter().filter_map(|id| rows.remove(id)).collect();
    let template = store::cron::template_job(tx, parent.id).await?;
    let jobs: Vec<ParsedJob> = items
        .iter()
        .map(|item| ParsedJob {
            step: Some(StepRun {
                workflow_id: id,
                step: step.to_string(),
                inputs: Some(inputs.clone()),
                item: Some(item.clone()),
            }),
            ..template.clone()
        })
        .collect();
    let pairs: Vec<(&Task, &ParsedJob)> = runs.iter().zip(&jobs).collect();
    let inserted = crate::service::jobs::insert_many(tx, &pairs, None).await?;
    let mut events = Vec::with_capacity(n * 3);
    for (run, inserted) in runs.iter().zip(inserted) {
        if let Inserted::Created(_, dispatch) = inserted {
            events.extend(crate::domain::events::of_creation(
                run,
                Uuid::nil(),
                dispatch,
                None,
            )?);
        }
    }
    shared::outbox::enqueue_all(tx, events).await?;
    let ids: Vec<Uuid> = runs.iter().map(|t| t.id).collect();
    store::workflows::mark_runs(tx, id, step, &ids, inputs, &items).await?;
    let mut touched = runs;
    touched.push(parent.clone());
    Ok(touched)
}
