//! Requests this gateway reserved in Redis and has not admitted yet, per window counter.
//!
//! A reservation asks for `n` and is granted what is left of the limit, at most `n` (Redis adds
//! only the grant to the window's count, so the count never passes the limit); the gateway then
//! admits up to the grant without asking again. The next reservation asks twice as much when the
//! last one lasted under [`QUICK`], half as much when its window ended with some left, and never
//! more than [`max_lease`]; while one such batch is being asked for, other requests for the same
//! counter ask for one each, so a burst does not reserve a batch per request. A request whose
//! reservation was granted nothing is still admitted from what concurrent ones left here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::policy::{Decision, Policy};

/// A reservation used up faster than this makes the next one larger.
const QUICK: Duration = Duration::from_secs(1);

/// The largest reservation, whatever the limit.
const MAX_LEASE: u64 = 1_000;

/// How long a batch being asked for keeps the others to one each (longer than Redis answers).
const BATCH_PATIENCE: Duration = Duration::from_secs(2);

/// Two reservations whose windows end closer than this counted in the same window.
const SAME_WINDOW: Duration = Duration::from_millis(500);

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
    /// When the window of the counter ends (never later than in Redis).
    resets_at: Instant,
    /// Reserved and not admitted yet.
    left: u64,
    /// The window's count in Redis after the last reservation.
    counted: u64,
    /// The last batch's size, and when it was made.
    size: u64,
    reserved_at: Instant,
    /// Since when a batch is being asked for.
    batch_since: Option<Instant>,
}

impl Lease {
    fn current(&self, now: Instant) -> bool {
        now < self.resets_at
    }
}

/// What to ask Redis for; hand it back with [`Leases::reserved`] or [`Leases::abandon`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub n: u64,
    /// More than one, asked for while the others ask for one each.
    batch: bool,
    /// Sized by the lease's history (not one because a batch was being asked for): its answer
    /// sizes the next.
    sizing: bool,
}

/// What Redis granted a reservation.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub granted: u64,
    /// The window's count after it.
    pub count: u64,
    pub resets_at: Instant,
}

impl Leases {
    fn inner(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.inner.lock().expect("never poisoned")
    }

    /// Admits one request from what is reserved for `key` in its current window, if any is left.
    pub fn take(&self, key: &str, policy: Policy) -> Option<Decision> {
        take(&mut self.inner(), key, policy, Instant::now())
    }

    /// How many to reserve for `key` now.
    pub fn want(&self, key: &str, policy: Policy) -> Want {
        let now = Instant::now();
        let mut leases = self.inner();
        let one = |sizing| Want {
            n: 1,
            batch: false,
            sizing,
        };
        let Some(lease) = leases.get_mut(key) else {
            return one(true);
        };
        if lease
            .batch_since
            .is_some_and(|at| now - at < BATCH_PATIENCE)
        {
            return one(false);
        }
        let size = match lease.current(now) || lease.left == 0 {
            true if lease.reserved_at.elapsed() < QUICK => lease.size.saturating_mul(2),
            true => lease.size,
            false => (lease.size / 2).max(1),
        };
        let n = size.min(max_lease(policy.limit));
        if n > 1 {
            lease.batch_since = Some(now);
        }
        Want {
            n,
            batch: n > 1,
            sizing: true,
        }
    }

    /// A reservation that got no answer (Redis away, the session ended).
    pub fn abandon(&self, key: &str, want: Want) {
        if want.batch {
            if let Some(lease) = self.inner().get_mut(key) {
                lease.batch_since = None;
            }
        }
    }

    /// Redis granted `grant` of `want`: the decision for the request that asked; the rest of the
    /// grant is kept for the next ones.
    pub fn reserved(&self, key: &str, policy: Policy, want: Want, grant: Grant) -> Decision {
        let now = Instant::now();
        let mut leases = self.inner();
        if want.batch {
            if let Some(lease) = leases.get_mut(key) {
                lease.batch_since = None;
            }
        }
        if grant.granted == 0 {
            // Past the limit, unless concurrent reservations left some here.
            return take(&mut leases, key, policy, now).unwrap_or(Decision {
                policy,
                allowed: false,
                remaining: 0,
                reset_secs: seconds_until(grant.resets_at, now),
            });
        }
        let fresh = Lease {
            resets_at: grant.resets_at,
            left: grant.granted - 1,
            counted: grant.count,
            size: want.n,
            reserved_at: now,
            batch_since: None,
        };
        if leases.len() >= MAX_LEASES && !leases.contains_key(key) {
            leases.retain(|_, lease| lease.current(now));
        }
        let full = leases.len() >= MAX_LEASES;
        let lease = match leases.get_mut(key) {
            Some(lease) if same_window(lease.resets_at, fresh.resets_at) => {
                lease.left += fresh.left;
                lease.counted = lease.counted.max(fresh.counted);
                if want.sizing {
                    lease.size = fresh.size;
                    lease.reserved_at = now;
                }
                *lease
            }
            // A later window: what is left of the earlier one no longer counts.
            Some(lease) if fresh.resets_at > lease.resets_at => {
                *lease = Lease {
                    batch_since: lease.batch_since,
                    ..fresh
                };
                fresh
            }
            // Counted in a window that has ended here already: admit this one request only.
            Some(_) => Lease { left: 0, ..fresh },
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

fn take(
    leases: &mut HashMap<String, Lease>,
    key: &str,
    policy: Policy,
    now: Instant,
) -> Option<Decision> {
    let lease = leases.get_mut(key)?;
    if !lease.current(now) || lease.left == 0 {
        return None;
    }
    lease.left -= 1;
    Some(decision(policy, lease, now))
}

fn same_window(a: Instant, b: Instant) -> bool {
    a.max(b) - a.min(b) < SAME_WINDOW
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

    /// Redis's side of a reservation: grants what is left under the limit.
    fn grant(count: &mut u64, want: Want, limit: u64, resets_at: Instant) -> Grant {
        let granted = want.n.min(limit.saturating_sub(*count));
        *count += granted;
        Grant {
            granted,
            count: *count,
            resets_at,
        }
    }

    /// Admits as the gateway would.
    fn admit(leases: &Leases, count: &mut u64) -> Decision {
        if let Some(decision) = leases.take("k", POLICY) {
            return decision;
        }
        let want = leases.want("k", POLICY);
        let granted = grant(count, want, POLICY.limit, in_a_minute());
        leases.reserved("k", POLICY, want, granted)
    }

    #[test]
    fn reservations_grow_for_a_busy_client_and_never_admit_past_the_limit() {
        let leases = Leases::default();
        let mut count = 0;
        let mut grants = vec![];
        let admitted = (0..150)
            .filter(|_| {
                let before = count;
                let allowed = admit(&leases, &mut count).allowed;
                if count != before {
                    grants.push(count - before);
                }
                allowed
            })
            .count();
        assert_eq!((admitted, count), (100, 100));
        assert_eq!(
            &grants[..5],
            &[1, 2, 4, 5, 5],
            "doubling up to a twentieth of 100"
        );
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
    fn while_a_batch_is_asked_for_the_others_ask_for_one_and_use_what_it_left() {
        let leases = Leases::default();
        let mut count = 0;
        admit(&leases, &mut count);
        admit(&leases, &mut count);
        let batch = leases.want("k", POLICY);
        let other = leases.want("k", POLICY);
        assert_eq!((batch.n, other.n), (4, 1));
        // The batch takes the last 4 under a limit of 7; the other request is granted nothing
        // but admitted from what the batch left.
        let small = Policy { limit: 7, ..POLICY };
        let resets_at = in_a_minute();
        let batch_grant = grant(&mut count, batch, small.limit, resets_at);
        assert!(leases.reserved("k", small, batch, batch_grant).allowed);
        let other_grant = grant(&mut count, other, small.limit, resets_at);
        assert_eq!(other_grant.granted, 0);
        assert!(leases.reserved("k", small, other, other_grant).allowed);
        let rest = (0..10)
            .filter(|_| leases.take("k", small).is_some())
            .count();
        assert_eq!(rest, 3, "7 admitted in all");
        let refused = leases.want("k", small);
        let refused = leases.reserved(
            "k",
            small,
            refused,
            grant(&mut count, refused, 7, resets_at),
        );
        assert_eq!((refused.allowed, refused.remaining), (false, 0));
    }

    #[test]
    fn the_ones_asked_for_beside_a_batch_do_not_shrink_the_next_batch() {
        let leases = Leases::default();
        let mut count = 0;
        admit(&leases, &mut count);
        admit(&leases, &mut count);
        let (batch, other) = (leases.want("k", POLICY), leases.want("k", POLICY));
        let granted = grant(&mut count, batch, POLICY.limit, in_a_minute());
        leases.reserved("k", POLICY, batch, granted);
        let granted = grant(&mut count, other, POLICY.limit, in_a_minute());
        leases.reserved("k", POLICY, other, granted);
        while leases.take("k", POLICY).is_some() {}
        assert_eq!(
            leases.want("k", POLICY).n,
            5,
            "twice 4, at most a twentieth of 100"
        );
    }

    #[test]
    fn what_an_ended_window_left_is_not_used_in_the_next() {
        let leases = Leases::default();
        let now = Instant::now();
        let (old, new) = (
            now + Duration::from_millis(100),
            now + Duration::from_secs(60),
        );
        let want = Want {
            n: 5,
            batch: true,
            sizing: true,
        };
        let next = |resets_at| Grant {
            granted: 5,
            count: 5,
            resets_at,
        };
        // The new window's reservation is applied first, the old one's after it.
        leases.reserved("k", POLICY, want, next(new));
        leases.reserved("k", POLICY, want, next(old));
        let left = (0..10)
            .filter(|_| leases.take("k", POLICY).is_some())
            .count();
        assert_eq!(left, 4, "only the new window's rest");
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
            assert_eq!(want.n, 1);
            let granted = grant(&mut count, want, small.limit, in_a_minute());
            leases.reserved("k", small, want, granted);
        }
    }
}
