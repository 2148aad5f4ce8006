//! The assertions a service has already accepted, remembered for as long as any of them could
//! still be valid, so that each is accepted once.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Identifiers seen within the last `span` at least (and at most twice that): two generations,
/// the older dropped whole when the newer is `span` old, so remembering costs one set insert
/// and forgetting costs nothing per entry.
pub struct Seen {
    span: Duration,
    generations: Mutex<Generations>,
}

struct Generations {
    current: HashSet<u128>,
    previous: HashSet<u128>,
    since: Instant,
}

impl Seen {
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            generations: Mutex::new(Generations {
                current: HashSet::new(),
                previous: HashSet::new(),
                since: Instant::now(),
            }),
        }
    }

    /// Whether `id` is new (and now remembered); `false` if it was seen within `span`.
    pub fn first(&self, id: u128) -> bool {
        self.first_at(id, Instant::now())
    }

    fn first_at(&self, id: u128, now: Instant) -> bool {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let age = now.saturating_duration_since(g.since);
        if age >= self.span {
            // The new generation starts at the size of the last, so it does not grow (and
            // rehash) from nothing under the lock.
            let size = g.current.len();
            let older = std::mem::replace(&mut g.current, HashSet::with_capacity(size));
            g.previous = match age >= self.span * 2 {
                true => HashSet::new(),
                false => older,
            };
            g.since = now;
        }
        !g.previous.contains(&id) && g.current.insert(id)
    }

    /// How many identifiers are remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        g.current.len() + g.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_within_its_span_and_forgotten_after_two() {
        let span = Duration::from_secs(20);
        let seen = Seen::new(span);
        let start = Instant::now();
        assert!(seen.first_at(1, start));
        assert!(!seen.first_at(1, start));
        // Just before the span ends, and just after (now in the older generation).
        assert!(!seen.first_at(1, start + span - Duration::from_millis(1)));
        assert!(seen.first_at(2, start + span));
        assert!(!seen.first_at(1, start + span + Duration::from_secs(1)));
        assert!(!seen.first_at(2, start + span * 2 - Duration::from_millis(1)));
        // Two spans on, the first is forgotten, the second (a span old) still held.
        assert!(!seen.first_at(2, start + span * 2));
        assert!(seen.first_at(1, start + span * 2));
        // A long quiet spell forgets everything.
        assert!(seen.first_at(2, start + span * 5));
        assert_eq!(seen.len(), 1);
    }
}
