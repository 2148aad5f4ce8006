//! Requests this gateway reserved in Redis and has not admitted yet, per window counter.
//!
//! A reservation of `n` adds `n` to the window's count in Redis at once; the gateway then admits
//! up to `n` requests without asking again. The next reservation is twice as large when the last
//! one lasted under [`QUICK`], half as large when its window ended with some left, and never more
//! than [`max_lease`]. Near the limit only what is left under it is granted, so the requests all
//! replicas admit in a window never exceed the limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Decision, Policy};

/// A reservation used up faster than this makes the next one larger.
const QUICK: Duration = Duration::from_secs(1);

/// The largest reservation, whatever the limit.
const MAX_LEASE: u64 = 1_000;

/// Window counters with a lease kept at most; past this, no new lease is kept until old windows
/// end (those requests reserve one at a time).
const MAX_LEASES: usize = 100_000;

/// The largest reservation under `limit`: a twentieth of it, 1 to [`MAX_LEASE`].
pub fn max_lease(limit: u64) -> u64 {
    (limit / 20).clamp(1, MAX_LEASE)
}

#[derive(Default)]
pub struct Leases {
    inner: Mutex<HashMap<String, Lease>>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// When the window of the counter ends.
    resets_at: Instant,
    /// Reserved and not admitted yet.
    left: u64,
    /// The window's count in Redis after the last reservation.
    counted: u64,
    /// The last reservation's size, and when it was made.
    size: u64,
    reserved_at: Instant,
}

impl Lease {
    fn current(&self, now: Instant) -> bool {
        now < self.resets_at
    }
}

impl Leases {
    fn inner(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.inner.lock().expect("never poisoned")
    }

    /// Admits one request from what is reserved for `key` in its current window, if any is left.
    pub fn take(&self, key: &str, policy: Policy) -> Option<Decision> {
        let now = Instant::now();
        let mut leases = self.inner();
        let lease = leases.get_mut(key)?;
        if !lease.current(now) || lease.left == 0 {
            return None;
        }
        lease.left -= 1;
        Some(decision(policy, lease, now))
    }

    /// How many to reserve for `key` now.
    pub fn want(&self, key: &str, policy: Policy) -> u64 {
        let now = Instant::now();
        let size = match self.inner().get(key) {
            None => 1,
            Some(lease) if lease.current(now) || lease.left == 0 => {
                match lease.reserved_at.elapsed() < QUICK {
                    true => lease.size.saturating_mul(2),
                    false => lease.size,
                }
            }
            Some(lease) => (lease.size / 2).max(1),
        };
        size.min(max_lease(policy.limit))
    }

    /// A reservation of `wanted` brought the window's count to `count`; the window resets at
    /// `resets_at`. The decision for the request that asked; what else was granted is kept for
    /// the next ones.
    pub fn reserved(
        &self,
        key: &str,
        policy: Policy,
        wanted: u64,
        count: u64,
        resets_at: Instant,
    ) -> Decision {
        let now = Instant::now();
        let before = count.saturating_sub(wanted);
        let granted = wanted.min(policy.limit.saturating_sub(before));
        if granted == 0 {
            return Decision {
                policy,
                allowed: false,
                remaining: 0,
                reset_secs: seconds_until(resets_at, now),
            };
        }
        let fresh = Lease {
            resets_at,
            left: granted - 1,
            counted: count,
            size: wanted,
            reserved_at: now,
        };
        let mut leases = self.inner();
        if leases.len() >= MAX_LEASES && !leases.contains_key(key) {
            leases.retain(|_, lease| lease.current(now));
        }
        let full = leases.len() >= MAX_LEASES;
        let lease = match leases.get_mut(key) {
            // Another request reserved in the same window meanwhile: both reservations stand.
            Some(lease) if lease.current(now) => {
                lease.left += fresh.left;
                lease.counted = lease.counted.max(count);
                lease.size = wanted;
                lease.reserved_at = now;
                *lease
            }
            Some(lease) => {
                *lease = fresh;
                fresh
            }
            None => {
                if !full {
                    leases.insert(key.to_string(), fresh);
                }
                fresh
            }
        };
        decision(policy, &lease, now)
    }
}

fn decision(policy: Policy, lease: &Lease, now: Instant) -> Decision {
    Decision {
        policy,
        allowed: true,
        remaining: policy.limit.saturating_sub(lease.counted) + lease.left,
        reset_secs: seconds_until(lease.resets_at, now),
    }
}

/// Whole seconds until `at`, at least 1 (for `Retry-After` and the `RateLimit` header).
fn seconds_until(at: Instant, now: Instant) -> u64 {
    let until = at.saturating_duration_since(now);
    (until.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        name: "api",
        limit: 100,
        window_secs: 60,
    };

    fn in_a_minute() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    /// Reserves as the gateway would, counting in `count` as Redis would.
    fn admit(leases: &Leases, count: &mut u64) -> Decision {
        if let Some(decision) = leases.take("k", POLICY) {
            return decision;
        }
        let want = leases.want("k", POLICY);
        *count += want;
        leases.reserved("k", POLICY, want, *count, in_a_minute())
    }

    #[test]
    fn reservations_grow_for_a_busy_client_and_never_admit_past_the_limit() {
        let leases = Leases::default();
        let mut count = 0;
        let mut wants = vec![];
        let admitted = (0..150)
            .filter(|_| {
                let before = count;
                let allowed = admit(&leases, &mut count).allowed;
                if count != before {
                    wants.push(count - before);
                }
                allowed
            })
            .count();
        assert_eq!(admitted, 100);
        assert_eq!(
            &wants[..4],
            &[1, 2, 4, 5],
            "doubling up to a twentieth of 100"
        );
        assert!(wants[4..].iter().all(|w| *w == 5), "{wants:?}");
    }

    #[test]
    fn the_remaining_count_falls_by_one_per_request() {
        let leases = Leases::default();
        let mut count = 0;
        let remaining: Vec<u64> = (0..8)
            .map(|_| admit(&leases, &mut count).remaining)
            .collect();
        assert_eq!(remaining, [99, 98, 97, 96, 95, 94, 93, 92]);
    }

    #[test]
    fn near_the_limit_only_what_is_left_is_granted() {
        let leases = Leases::default();
        // Other replicas counted 98 of 100; this one reserves 5.
        let decision = leases.reserved("k", POLICY, 5, 103, in_a_minute());
        assert!(decision.allowed);
        assert!(leases.take("k", POLICY).is_some());
        assert!(leases.take("k", POLICY).is_none());
        let refused = leases.reserved("k", POLICY, 1, 104, in_a_minute());
        assert_eq!((refused.allowed, refused.remaining), (false, 0));
    }

    #[test]
    fn a_small_limit_is_reserved_one_request_at_a_time() {
        let leases = Leases::default();
        let small = Policy {
            limit: 30,
            ..POLICY
        };
        let mut count = 0;
        for _ in 0..10 {
            assert!(leases.take("k", small).is_none());
            let want = leases.want("k", small);
            assert_eq!(want, 1);
            count += want;
            leases.reserved("k", small, want, count, in_a_minute());
        }
    }
}
