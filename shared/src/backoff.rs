//! Waiting between tries, written once: a [`Policy`] (the first gap, doubled up to a maximum;
//! optionally back to the first after a healthy try, and a total patience), a [`Backoff`] for
//! loops that wait between rounds themselves, and [`retry`] for an operation tried until it
//! succeeds. Waits end early when the shutdown fires.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first gap; each next one is twice the last, up to `max`.
    pub first: Duration,
    pub max: Duration,
    /// A try that lasted this long was healthy: the next failure waits `first` again.
    pub healthy: Option<Duration>,
    /// Give up once this much time has gone by since the first failure.
    pub patience: Option<Duration>,
}

impl Policy {
    pub const fn exponential(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            healthy: None,
            patience: None,
        }
    }

    pub const fn reset_after(self, healthy: Duration) -> Self {
        Self {
            healthy: Some(healthy),
            ..self
        }
    }

    pub const fn give_up_after(self, patience: Duration) -> Self {
        Self {
            patience: Some(patience),
            ..self
        }
    }
}

/// The gaps of one run of failures.
#[derive(Debug)]
pub struct Backoff {
    policy: Policy,
    next: Duration,
    failing_since: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            next: policy.first,
            failing_since: None,
        }
    }

    /// After a success: the next failure starts from the first gap.
    pub fn reset(&mut self) {
        self.next = self.policy.first;
        self.failing_since = None;
    }

    /// The gap to wait after a failure, or `None` once the patience is spent.
    pub fn next_gap(&mut self) -> Option<Duration> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        let gap = self.next;
        if let Some(patience) = self.policy.patience {
            if since.elapsed() + gap >= patience {
                return None;
            }
        }
        self.next = (gap * 2).min(self.policy.max);
        Some(gap)
    }

    /// Waits the next gap. `false` when `shutdown` fired first or the patience is spent.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let Some(gap) = self.next_gap() else {
            return false;
        };
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(gap) => true,
        }
    }
}

/// Why [`retry`] stopped without a success.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The shutdown fired while waiting.
    Shutdown,
    /// The patience ran out; the last error.
    GaveUp(E),
    /// An error not worth another try.
    Final(E),
}

/// Runs `attempt` until it succeeds. After each failure `retryable` sees the error (to log or
/// count it) and says whether to try again; then the policy's gap is waited.
pub async fn retry<T, E, F, Fut>(
    policy: Policy,
    shutdown: &CancellationToken,
    mut retryable: impl FnMut(&E) -> bool,
    mut attempt: F,
) -> Result<T, Stopped<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        let started = policy.healthy.map(|_| Instant::now());
        let err = match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if !retryable(&err) {
            return Err(Stopped::Final(err));
        }
        if let (Some(started), Some(healthy)) = (started, policy.healthy) {
            if started.elapsed() >= healthy {
                backoff.reset();
            }
        }
        let Some(gap) = backoff.next_gap() else {
            return Err(Stopped::GaveUp(err));
        };
        tokio::select! {
            _ = shutdown.cancelled() => return Err(Stopped::Shutdown),
            _ = tokio::time::sleep(gap) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn gaps_double_up_to_the_maximum_and_start_again_after_a_reset() {
        let mut backoff = Backoff::new(Policy::exponential(100 * MS, 350 * MS));
        let gaps: Vec<_> = (0..4).map(|_| backoff.next_gap().unwrap()).collect();
        assert_eq!(gaps, [100 * MS, 200 * MS, 350 * MS, 350 * MS]);
        backoff.reset();
        assert_eq!(backoff.next_gap(), Some(100 * MS));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_tries_until_success_and_stops_on_a_final_error() {
        let never = CancellationToken::new();
        let mut tries = 0;
        let policy = Policy::exponential(100 * MS, Duration::from_secs(1));
        let value = retry(
            policy,
            &never,
            |_: &&str| true,
            || {
                tries += 1;
                let outcome = if tries < 3 { Err("down") } else { Ok(tries) };
                async move { outcome }
            },
        )
        .await;
        assert_eq!(value.unwrap(), 3);
        let stopped = retry(
            policy,
            &never,
            |e: &&str| *e != "bad",
            || async { Err::<(), _>("bad") },
        )
        .await;
        assert!(matches!(stopped, Err(Stopped::Final("bad"))));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_after_its_patience_or_at_the_shutdown() {
        let never = CancellationToken::new();
        let patient = Policy::exponential(100 * MS, Duration::from_secs(1))
            .give_up_after(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        let stopped = retry(
            patient,
            &never,
            |_: &()| true,
            || async { Err::<(), _>(()) },
        )
        .await;
        assert!(matches!(stopped, Err(Stopped::GaveUp(()))));
        assert!(started.elapsed() < Duration::from_secs(5));

        let shutdown = CancellationToken::new();
        let waiting = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let forever = Policy::exponential(100 * MS, Duration::from_secs(1));
                retry(
                    forever,
                    &shutdown,
                    |_: &()| true,
                    || async { Err::<(), _>(()) },
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        shutdown.cancel();
        assert!(matches!(waiting.await.unwrap(), Err(Stopped::Shutdown)));
    }
}
