//! What a running workflow does next (issue 27), from where its steps stand: which waiting
//! steps are skipped (a need ended without success and they did not ask to continue; skips
//! cascade, so no join ever waits forever), which are released (every need ended; at most
//! `max_parallel` steps live at once, in the order they were sent), and whether it is over.
//! Pure: no I/O.

use serde_json::Value;

use crate::domain::{
    status::Status,
    workflow::{MapSpec, OnFailure, WorkflowStatus},
};

/// A step as the plan sees it: its task's status, whether it was skipped, and its needs (by
/// position).
#[derive(Debug, Clone)]
pub struct StepNow {
    pub status: Status,
    pub skipped: bool,
    pub needs: Vec<(usize, OnFailure)>,
}

/// What to do, by step position.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub skip: Vec<usize>,
    pub release: Vec<usize>,
    /// The workflow's final status, once every step has ended.
    pub finished: Option<WorkflowStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Live,
    Succeeded,
    /// Dead, cancelled or skipped.
    Failed,
}

fn phase(step: &StepNow) -> Phase {
    if step.skipped {
        return Phase::Failed;
    }
    match step.status {
        Status::Pending => Phase::Waiting,
        Status::Completed => Phase::Succeeded,
        Status::Dead | Status::Cancelled => Phase::Failed,
        _ => Phase::Live,
    }
}

/// The next moves of a running workflow whose steps stand as `steps`.
pub fn plan(steps: &[StepNow], max_parallel: Option<u32>) -> Plan {
    let mut phases: Vec<Phase> = steps.iter().map(phase).collect();
    let mut plan = Plan::default();
    // A skip can make another step's need fail: repeat until nothing changes (one pass when the
    // steps were sent in the order of their needs).
    loop {
        let mut changed = false;
        for (i, step) in steps.iter().enumerate() {
            let blocked = step.needs.iter().any(|&(need, on_failure)| {
                phases[need] == Phase::Failed && on_failure == OnFailure::Skip
            });
            if phases[i] == Phase::Waiting && blocked {
                phases[i] = Phase::Failed;
                plan.skip.push(i);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    plan.skip.sort_unstable();
    let live = phases.iter().filter(|p| **p == Phase::Live).count();
    let mut room = max_parallel.map_or(usize::MAX, |m| (m as usize).saturating_sub(live));
    for (i, step) in steps.iter().enumerate() {
        if room == 0 {
            break;
        }
        let ready = step
            .needs
            .iter()
            .all(|&(need, _)| matches!(phases[need], Phase::Succeeded | Phase::Failed));
        if phases[i] == Phase::Waiting && ready {
            plan.release.push(i);
            room -= 1;
        }
    }
    for &i in &plan.release {
        phases[i] = Phase::Live;
    }
    if phases
        .iter()
        .all(|p| matches!(p, Phase::Succeeded | Phase::Failed))
    {
        plan.finished = Some(if phases.iter().all(|p| *p == Phase::Succeeded) {
            WorkflowStatus::Completed
        } else {
            WorkflowStatus::Failed
        });
    }
    plan
}

/// The elements step `map` runs over, from its mapped step's `result`, at most `max`; or why
/// there are none to run.
pub fn elements(map: &MapSpec, result: Option<&Value>, max: usize) -> Result<Vec<Value>, String> {
    let found = result.and_then(|r| r.pointer(&map.pointer));
    match found {
        Some(Value::Array(items)) if items.len() <= max => Ok(items.clone()),
        Some(Value::Array(items)) => Err(format!(
            "{} elements at {:?} in {:?}'s result, more than the {max} a map runs",
            items.len(),
            map.pointer,
            map.step
        )),
        Some(_) => Err(format!(
            "the value at {:?} in {:?}'s result is not an array",
            map.pointer, map.step
        )),
        None => Err(format!(
            "{:?}'s result has nothing at {:?}",
            map.step, map.pointer
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use OnFailure::{Continue, Skip};
    use Status::{Completed, Dead, Pending, Queued};

    fn step(status: Status, needs: &[(usize, OnFailure)]) -> StepNow {
        StepNow {
            status,
            skipped: false,
            needs: needs.to_vec(),
        }
    }

    #[test]
    fn a_join_is_released_once_every_need_succeeded() {
        // The diamond: a → b, c → d.
        let mut steps = vec![
            step(Completed, &[]),
            step(Completed, &[(0, Skip)]),
            step(Queued, &[(0, Skip)]),
            step(Pending, &[(1, Skip), (2, Skip)]),
        ];
        assert_eq!(plan(&steps, None), Plan::default());
        steps[2].status = Completed;
        let next = plan(&steps, None);
        assert_eq!((next.release, next.finished), (vec![3], None));
        steps[3].status = Completed;
        assert_eq!(plan(&steps, None).finished, Some(WorkflowStatus::Completed));
    }

    #[test]
    fn a_dead_step_skips_what_follows_it_unless_a_need_continues() {
        // a dies; b needs a, c needs b (skipped in turn), d continues past a; e needs c and d.
        let steps = vec![
            step(Dead, &[]),
            step(Pending, &[(0, Skip)]),
            step(Pending, &[(1, Skip)]),
            step(Pending, &[(0, Continue)]),
            step(Pending, &[(3, Skip), (2, Continue)]),
        ];
        let next = plan(&steps, None);
        assert_eq!((next.skip, next.release), (vec![1, 2], vec![3]));
        assert_eq!(next.finished, None, "d is about to run");
    }

    #[test]
    fn skips_reach_steps_sent_before_what_they_need() {
        let steps = vec![
            step(Pending, &[(1, Skip)]),
            step(Pending, &[(2, Skip)]),
            step(Dead, &[]),
        ];
        let next = plan(&steps, None);
        assert_eq!(next.skip, vec![0, 1]);
        assert_eq!(next.finished, Some(WorkflowStatus::Failed));
    }

    #[test]
    fn no_more_than_max_parallel_steps_are_live() {
        let mut steps = vec![step(Completed, &[])];
        steps.extend((0..5).map(|_| step(Pending, &[(0, Skip)])));
        assert_eq!(plan(&steps, Some(2)).release, vec![1, 2]);
        steps[1].status = Queued;
        assert_eq!(plan(&steps, Some(2)).release, vec![2]);
        steps[2].status = Queued;
        assert!(plan(&steps, Some(2)).release.is_empty());
        assert_eq!(plan(&steps, None).release, vec![3, 4, 5]);
    }

    #[test]
    fn a_map_runs_over_the_array_its_pointer_names_and_nothing_else() {
        let map = MapSpec {
            step: "list".into(),
            pointer: "/data/items".into(),
        };
        let result = json!({"data": {"items": [1, 2, 3], "name": "x"}});
        assert_eq!(
            elements(&map, Some(&result), 3),
            Ok(vec![json!(1), json!(2), json!(3)])
        );
        assert!(elements(&map, Some(&result), 2)
            .unwrap_err()
            .contains("more than the 2"));
        let whole = MapSpec {
            step: "list".into(),
            pointer: String::new(),
        };
        assert_eq!(elements(&whole, Some(&json!([])), 5), Ok(vec![]));
        assert!(elements(&whole, Some(&result), 5)
            .unwrap_err()
            .contains("not an array"));
        assert!(elements(&map, None, 5).unwrap_err().contains("nothing at"));
    }
}
