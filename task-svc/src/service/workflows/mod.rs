//! Workflows (issue 27): graphs of steps, each an ordinary task with its job. Created in one
//! transaction ([`create`]), moved on as their steps end ([`advance`]), read ([`query`]) and
//! cancelled ([`control`]).

pub mod advance;
pub mod control;
pub mod create;
pub mod expand;
pub mod query;

use crate::{
    domain::workflow_view::{step_status, StepView, WorkflowView},
    store::workflows::{StepRow, WorkflowRow},
};

/// What a client sees of `row` (with its `steps` when given).
pub fn view(row: WorkflowRow, steps: Option<Vec<StepRow>>) -> WorkflowView {
    WorkflowView {
        workflow: row,
        steps: steps.map(|steps| {
            steps
                .into_iter()
                .map(|s| StepView {
                    status: step_status(s.status, s.skipped),
                    id: s.step,
                    task_id: s.task_id,
                    needs: s.needs.0.into_iter().map(|n| n.step).collect(),
                    result: s.result,
                    error: s.last_error,
                    attempts: s.attempt,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                })
                .collect()
        }),
    }
}
