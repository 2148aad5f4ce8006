//! `POST /api/v1/workflows`: the graph checked, every step written as a task with its job
//! in one transaction with the workflow: the steps that need nothing dispatched with it, the
//! others `pending`, not dispatched.

use serde_json::json;
use shared::identity::Identity;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    domain::{
        job::JobSpec,
        task::{parse_title, CreateTask, Priority},
        workflow::{check, StepRun, StepSpec},
        workflow_view::{CreateWorkflow, WorkflowView},
    },
    error::TaskError,
    service::create::{insert_many, prepare, Created},
    store::{self, workflows::NeedRow},
    AppState,
};

fn invalid(step: &str, detail: impl std::fmt::Display) -> TaskError {
    TaskError::invalid("invalid_workflow", format!("step {step:?}: {detail}"))
}

/// A step's job as a task's, refusing what a step cannot have.
fn step_job(step: &StepSpec) -> Result<JobSpec, TaskError> {
    for field in ["cron", "run_at", "unique_key"] {
        if step.job.get(field).is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                &step.id,
                format!("a step's job takes no `{field}` (a step runs when what it needs ended)"),
            ));
        }
    }
    serde_json::from_value(step.job.clone()).map_err(|e| invalid(&step.id, e))
}

/// Creates `request`'s workflow for `identity`; its steps that need nothing are dispatched.
pub async fn create(
    state: &AppState,
    identity: &Identity,
    request: CreateWorkflow,
) -> Result<WorkflowView, TaskError> {
    let title = parse_title(&request.title)?;
    let max_steps = state.config.jobs.workflow_max_steps as usize;
    check(&request.steps, max_steps)?;
    if let Some(m) = request.max_parallel {
        if !(1..=10_000).contains(&m) {
            return Err(TaskError::invalid(
                "invalid_workflow",
                "max_parallel must be 1 to 10000",
            ));
        }
    }
    let priority = request.priority.unwrap_or(Priority::Normal);
    let prefix: String = title.chars().take(120).collect();
    let id = Uuid::now_v7();
    let mut prepared = Vec::with_capacity(request.steps.len());
    let mut predictor = None;
    for step in &request.steps {
        let task = CreateTask {
            title: format!("{prefix} / {}", step.id),
            description: String::new(),
            priority: Some(priority),
            due_at: None,
            assignee_id: None,
            channel_id: None,
            tags: vec!["workflow".into()],
            parent_id: None,
            recurrence: None,
            job: Some(step_job(step)?),
        };
        let mut one = prepare(state, identity, task, &mut predictor)
            .await
            .map_err(|err| match err {
                TaskError::Invalid { code, detail } => TaskError::Invalid {
                    code,
                    detail: format!("step {:?}: {detail}", step.id),
                },
                other => other,
            })?;
        // A step that needs nothing goes out with the creation, as a bulk creation's jobs do
        // (unless `max_parallel` bounds them: then the release below chooses).
        let run = StepRun {
            workflow_id: id,
            step: step.id.clone(),
            inputs: Some(json!({})),
            item: None,
        };
        one.as_step(
            run,
            !step.needs.is_empty() || request.max_parallel.is_some(),
        );
        prepared.push(one);
    }
    let mut tx = state.pool.begin().await?;
    let refs: Vec<_> = prepared.iter().collect();
    let (created, mut audience) = insert_many(&mut tx, &state.config, identity, &refs).await?;
    let tasks: Vec<Uuid> = created
        .iter()
        .map(|c| match c {
            Created::New(task) => task.id,
            Created::Existing(id) => *id,
        })
        .collect();
    let row = store::workflows::insert(
        &mut tx,
        id,
        identity.user_id,
        &title,
        request.max_parallel.map(|m| m as i32),
    )
    .await?;
    let ids: Vec<String> = request.steps.iter().map(|s| s.id.clone()).collect();
    let needs: Vec<Json<Vec<NeedRow>>> = request
        .steps
        .iter()
        .map(|s| {
            Json(
                s.needs
                    .iter()
                    .map(|n| NeedRow {
                        step: n.step().to_string(),
                        on_failure: n.on_failure(),
                    })
                    .collect(),
            )
        })
        .collect();
    let maps: Vec<_> = request
        .steps
        .iter()
        .map(|s| s.map.clone().map(Json))
        .collect();
    store::workflows::insert_steps(&mut tx, id, &ids, &tasks, &needs, &maps).await?;
    let created = crate::domain::events::workflow(&row, ids.len(), Vec::new())?;
    shared::outbox::enqueue_all(&mut tx, vec![created]).await?;
    let released =
        crate::service::workflows::advance::advance(&mut tx, &state.config.jobs, id).await?;
    let touched: Vec<&crate::domain::task::Task> = released.iter().collect();
    audience.extend(store::tasks::audience_many(&mut tx, &touched).await?);
    let steps = store::workflows::steps(&mut tx, id).await?;
    let row = store::workflows::find(&mut tx, id, false)
        .await?
        .unwrap_or(row);
    shared::db::commit(&state.pool, tx).await?;
    state.cache.invalidate(&audience).await;
    tracing::info!(workflow_id = %id, steps = ids.len(), "workflow created");
    Ok(crate::service::workflows::view(row, Some(steps)))
}
