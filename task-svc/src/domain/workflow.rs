//! A workflow's graph as a client sends it (`POST /api/v1/workflows`, issue 27): steps with ids
//! and the steps each needs, checked before anything is stored. Ids are 1 to 64 of `a-z 0-9 _ -`
//! and unique, every need names another step, no step needs itself through others (a cycle), a
//! map step needs the step it maps over, and there are at most `max_steps` steps. A refusal is a
//! 422 `invalid_workflow` whose detail names the step. Pure: no I/O.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::TaskError;

/// What a dependent does when a step it needs ends without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// It is skipped, and the workflow fails (the default).
    #[default]
    Skip,
    /// It runs, with that input as an error object.
    Continue,
}

shared::text_enum!(OnFailure, "on_failure", { Skip = "skip", Continue = "continue" });

/// A need: a step's id, or `{"step", "on_failure"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NeedSpec {
    Step(String),
    Full {
        step: String,
        #[serde(default)]
        on_failure: OnFailure,
    },
}

impl NeedSpec {
    pub fn step(&self) -> &str {
        match self {
            Self::Step(step) | Self::Full { step, .. } => step,
        }
    }

    pub fn on_failure(&self) -> OnFailure {
        match self {
            Self::Step(_) => OnFailure::Skip,
            Self::Full { on_failure, .. } => *on_failure,
        }
    }
}

/// Runs a step once per element of the array at `pointer` (RFC 6901) in `step`'s result.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MapSpec {
    pub step: String,
    pub pointer: String,
}

/// One step: its id, what it needs, and its job (checked as any job is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    #[serde(default)]
    pub needs: Vec<NeedSpec>,
    pub job: Value,
    pub map: Option<MapSpec>,
}

/// The checked graph: steps by position (as sent), each step's needs and dependents by
/// position, and an order in which every step comes after all it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub needs: Vec<Vec<(usize, OnFailure)>>,
    pub dependents: Vec<Vec<usize>>,
    pub order: Vec<usize>,
}

/// A workflow step's part of a dispatch: its workflow, its id, and what it is handed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    pub workflow_id: uuid::Uuid,
    pub step: String,
    pub inputs: Option<Value>,
    pub item: Option<Value>,
}

/// Where a workflow stands: `running` until every step has ended, then `completed` if all
/// succeeded, `failed` if any did not; `cancelled` from the moment it is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

shared::text_enum!(WorkflowStatus, "workflow status", {
    Running = "running",
    Completed = "completed",
    Failed = "failed",
    Cancelled = "cancelled",
});

fn invalid(step: &str, detail: impl std::fmt::Display) -> TaskError {
    TaskError::invalid("invalid_workflow", format!("step {step:?}: {detail}"))
}

fn well_formed(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks `steps` (at most `max_steps`) and returns their graph.
pub fn check(steps: &[StepSpec], max_steps: usize) -> Result<Graph, TaskError> {
    if steps.is_empty() {
        return Err(TaskError::invalid(
            "invalid_workflow",
            "a workflow needs at least one step",
        ));
    }
    if steps.len() > max_steps {
        return Err(TaskError::invalid(
            "invalid_workflow",
            format!(
                "{} steps, more than the {max_steps} a workflow may have",
                steps.len()
            ),
        ));
    }
    let mut position = HashMap::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if !well_formed(&step.id) {
            return Err(invalid(&step.id, "an id is 1 to 64 of a-z 0-9 _ -"));
        }
        if position.insert(step.id.as_str(), i).is_some() {
            return Err(invalid(&step.id, "two steps have this id"));
        }
    }
    let mut needs = vec![Vec::new(); steps.len()];
    let mut dependents = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for need in &step.needs {
            let Some(&j) = position.get(need.step()) else {
                return Err(invalid(
                    &step.id,
                    format!("needs {:?}, no such step", need.step()),
                ));
            };
            if needs[i].iter().any(|&(k, _)| k == j) {
                return Err(invalid(&step.id, format!("needs {:?} twice", need.step())));
            }
            needs[i].push((j, need.on_failure()));
            dependents[j].push(i);
        }
        if let Some(map) = &step.map {
            if !step.needs.iter().any(|need| need.step() == map.step) {
                return Err(invalid(
                    &step.id,
                    format!("maps over {:?} without needing it", map.step),
                ));
            }
            if !(map.pointer.is_empty() || map.pointer.starts_with('/')) {
                return Err(invalid(
                    &step.id,
                    "a JSON pointer is empty or starts with `/`",
                ));
            }
        }
    }
    let order = topological(&needs, &dependents)
        .map_err(|on_cycle| invalid(&steps[on_cycle].id, "is on a cycle of needs"))?;
    Ok(Graph {
        needs,
        dependents,
        order,
    })
}

/// Kahn's order (ties in the order sent), or a step on a cycle.
fn topological(
    needs: &[Vec<(usize, OnFailure)>],
    dependents: &[Vec<usize>],
) -> Result<Vec<usize>, usize> {
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut ready: std::collections::VecDeque<usize> =
        (0..needs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(needs.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    match (0..needs.len()).find(|&i| waiting[i] > 0) {
        Some(on_cycle) => Err(on_cycle),
        None => Ok(order),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(value: Value) -> Vec<StepSpec> {
        serde_json::from_value(value).unwrap()
    }

    fn refusal(value: Value, max: usize) -> String {
        match check(&steps(value), max).unwrap_err() {
            TaskError::Invalid { code, detail } => {
                assert_eq!(code, "invalid_workflow");
                detail
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_diamond_is_ordered_after_its_needs() {
        let graph = check(
            &steps(json!([
                {"id": "d", "needs": ["b", {"step": "c", "on_failure": "continue"}], "job": {}},
                {"id": "b", "needs": ["a"], "job": {}},
                {"id": "c", "needs": ["a"], "job": {}},
                {"id": "a", "job": {}},
            ])),
            10,
        )
        .unwrap();
        assert_eq!(graph.order, vec![3, 1, 2, 0]);
        assert_eq!(
            graph.needs[0],
            vec![(1, OnFailure::Skip), (2, OnFailure::Continue)]
        );
        assert_eq!(graph.dependents[3], vec![1, 2]);
    }

    #[test]
    fn each_refusal_names_its_step() {
        let cases = [
            (
                json!([{"id": "a", "job": {}}, {"id": "a", "job": {}}]),
                "step \"a\": two steps",
            ),
            (
                json!([{"id": "a", "needs": ["x"], "job": {}}]),
                "step \"a\": needs \"x\", no such",
            ),
            (json!([{"id": "A", "job": {}}]), "step \"A\": an id is"),
            (
                json!([{"id": "a", "needs": ["a"], "job": {}}]),
                "step \"a\": is on a cycle",
            ),
            (
                json!([{"id": "a", "needs": ["c"], "job": {}}, {"id": "b", "needs": ["a"], "job": {}},
                       {"id": "c", "needs": ["b"], "job": {}}, {"id": "d", "job": {}}]),
                "is on a cycle",
            ),
            (
                json!([{"id": "a", "needs": ["b", "b"], "job": {}}, {"id": "b", "job": {}}]),
                "needs \"b\" twice",
            ),
            (
                json!([{"id": "a", "job": {}}, {"id": "m", "map": {"step": "a", "pointer": "/x"}, "job": {}}]),
                "step \"m\": maps over \"a\" without needing it",
            ),
            (
                json!([{"id": "a", "job": {}}, {"id": "m", "needs": ["a"], "map": {"step": "a", "pointer": "x"}, "job": {}}]),
                "step \"m\": a JSON pointer",
            ),
        ];
        for (value, expected) in cases {
            let detail = refusal(value.clone(), 10);
            assert!(detail.contains(expected), "{value}: {detail}");
        }
        let two = json!([{"id": "a", "job": {}}, {"id": "b", "job": {}}]);
        assert!(refusal(two, 1).contains("more than the 1"));
        assert!(refusal(json!([]), 1).contains("at least one step"));
    }
}
