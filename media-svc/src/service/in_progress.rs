//! Uploads in progress on this process, per person (`files.max_uploads_per_user`): each holds
//! up to a file's worth of buffers, so one person cannot hold many at once; and the bytes each
//! declared are held against its owner's quota, so that uploads running side by side see each
//! other before their bytes arrive (the commit checks the quota again, under a lock).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

#[derive(Default)]
struct Held {
    uploads: u32,
    bytes: u64,
}

/// The uploads in progress (cheap to clone).
#[derive(Clone)]
pub struct InProgress {
    people: Arc<Mutex<HashMap<Uuid, Held>>>,
    max_per_person: u32,
}

/// One upload in progress; dropping it ends it.
pub struct Slot {
    people: Arc<Mutex<HashMap<Uuid, Held>>>,
    person: Uuid,
    bytes: u64,
}

impl InProgress {
    pub fn new(max_per_person: u32) -> Self {
        Self {
            people: Arc::default(),
            max_per_person: max_per_person.max(1),
        }
    }

    /// Starts an upload of `person`'s declaring `bytes`. Returns its slot and the bytes their
    /// other uploads in progress declared, or `None` when they have `max_per_person` running.
    pub fn begin(&self, person: Uuid, bytes: u64) -> Option<(Slot, u64)> {
        let mut people = self.people.lock().expect("never poisoned");
        let held = people.entry(person).or_default();
        if held.uploads >= self.max_per_person {
            return None;
        }
        let others = held.bytes;
        held.uploads += 1;
        held.bytes = held.bytes.saturating_add(bytes);
        let slot = Slot {
            people: self.people.clone(),
            person,
            bytes,
        };
        Some((slot, others))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut people = self.people.lock().expect("never poisoned");
        if let Some(held) = people.get_mut(&self.person) {
            held.uploads = held.uploads.saturating_sub(1);
            held.bytes = held.bytes.saturating_sub(self.bytes);
            if held.uploads == 0 {
                people.remove(&self.person);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_has_at_most_the_slots_and_sees_what_the_others_declared() {
        let uploads = InProgress::new(2);
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (first, others) = uploads.begin(ada, 100).unwrap();
        assert_eq!(others, 0);
        let (second, others) = uploads.begin(ada, 50).unwrap();
        assert_eq!(others, 100);
        assert!(uploads.begin(ada, 1).is_none(), "two in progress");
        assert!(
            uploads.begin(bob, 1).is_some(),
            "another person's slots are their own"
        );
        drop(first);
        let (_third, others) = uploads.begin(ada, 7).unwrap();
        assert_eq!(others, 50);
        drop(second);
        drop(_third);
        assert!(uploads.people.lock().unwrap().is_empty());
    }
}
