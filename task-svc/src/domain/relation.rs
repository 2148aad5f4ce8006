//! Relations between two tasks: one blocks, duplicates or relates to the other. A relation is
//! stored once, in its direction, and each side reads it in its own words (the other task
//! "blocks" this one reads, there, "blocked by"). Pure: no I/O.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A relation as one of its two tasks sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Blocks,
    BlockedBy,
    RelatesTo,
    Duplicates,
    DuplicatedBy,
}

shared::text_enum!(Relation, "relation", {
    Blocks = "blocks",
    BlockedBy = "blocked_by",
    RelatesTo = "relates_to",
    Duplicates = "duplicates",
    DuplicatedBy = "duplicated_by",
});

/// A relation as stored: `task_id` `kind` `other_id`, `kind` one of `blocks`, `relates_to`,
/// `duplicates` (`relates_to` with the smaller id first, so it is stored once either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub task_id: Uuid,
    pub other_id: Uuid,
    pub kind: &'static str,
}

impl Relation {
    /// `this` `self` `other`, as stored.
    pub fn stored(self, this: Uuid, other: Uuid) -> Stored {
        let (task_id, other_id, kind) = match self {
            Relation::Blocks => (this, other, "blocks"),
            Relation::BlockedBy => (other, this, "blocks"),
            Relation::Duplicates => (this, other, "duplicates"),
            Relation::DuplicatedBy => (other, this, "duplicates"),
            Relation::RelatesTo => (this.min(other), this.max(other), "relates_to"),
        };
        Stored {
            task_id,
            other_id,
            kind,
        }
    }

    /// How task `this` sees a stored relation, and the other task; `None` when it is not one
    /// of its sides or the kind is unknown.
    pub fn seen_from(stored: &Stored, this: Uuid) -> Option<(Relation, Uuid)> {
        let forward = stored.task_id == this;
        if !forward && stored.other_id != this {
            return None;
        }
        let other = if forward {
            stored.other_id
        } else {
            stored.task_id
        };
        let relation = match (stored.kind, forward) {
            ("blocks", true) => Relation::Blocks,
            ("blocks", false) => Relation::BlockedBy,
            ("duplicates", true) => Relation::Duplicates,
            ("duplicates", false) => Relation::DuplicatedBy,
            ("relates_to", _) => Relation::RelatesTo,
            _ => return None,
        };
        Some((relation, other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_reads_a_relation_in_its_own_words() {
        shared::text_enum::assert_serde_names(Relation::ALL, |r| r.as_str());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        for relation in Relation::ALL {
            let stored = relation.stored(a, b);
            assert_eq!(Relation::seen_from(&stored, a), Some((*relation, b)));
            let back = Relation::seen_from(&stored, b).unwrap();
            assert_eq!(back.1, a);
            // What b reads, said from b, is stored the same way.
            assert_eq!(back.0.stored(b, a), stored, "{relation:?}");
        }
        assert_eq!(Relation::BlockedBy.stored(a, b).task_id, b);
        assert_eq!(
            Relation::RelatesTo.stored(b, a),
            Relation::RelatesTo.stored(a, b)
        );
        assert_eq!(
            Relation::seen_from(&Relation::Blocks.stored(a, b), Uuid::nil()),
            None
        );
    }
}
