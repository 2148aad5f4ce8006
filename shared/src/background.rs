//! Periodic background work, written once: a round, then a pause of `period` (or the shutdown,
//! whichever comes first), until the shutdown. A round logs its own failures; the loop never
//! stops on one.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `round` at once and then every `period` until `shutdown`.
pub async fn every<F, Fut>(period: Duration, shutdown: &CancellationToken, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    while !shutdown.is_cancelled() {
        round().await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

/// Like [`every`], with the first round after one `period` rather than at once.
pub async fn every_after<F, Fut>(period: Duration, shutdown: &CancellationToken, round: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(period) => {}
    }
    every(period, shutdown, round).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn rounds_come_every_period_until_the_shutdown() {
        let shutdown = CancellationToken::new();
        let rounds = Arc::new(AtomicU32::new(0));
        let task = {
            let (shutdown, rounds) = (shutdown.clone(), rounds.clone());
            tokio::spawn(async move {
                every(Duration::from_secs(10), &shutdown, || {
                    rounds.fetch_add(1, Ordering::SeqCst);
                    async {}
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3, "at 0, 10 and 20 s");
        shutdown.cancel();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 3, "none after the shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_round_can_wait_one_period() {
        let shutdown = CancellationToken::new();
        let rounds = Arc::new(AtomicU32::new(0));
        let task = {
            let (shutdown, rounds) = (shutdown.clone(), rounds.clone());
            tokio::spawn(async move {
                every_after(Duration::from_secs(10), &shutdown, || {
                    rounds.fetch_add(1, Ordering::SeqCst);
                    async {}
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 0);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        shutdown.cancel();
        task.await.unwrap();
    }
}
