//! Concurrent calls coalesced into batches. Each caller hands over one item and awaits its own
//! answer; a few lanes each take what is waiting (up to a most) and answer it as one batch. A
//! lone call runs at once; under load, what arrived while a batch was being answered goes into
//! the next, so one transaction (one lock, one WAL flush) serves many callers. The window adapts
//! by itself: no timer, no size to tune per deployment.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

type Call<T, R> = (T, oneshot::Sender<R>);

/// The handle callers use (cheap to clone). The lanes end once every handle is dropped.
pub struct Batcher<T, R> {
    sender: mpsc::Sender<Call<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts `lanes` lanes on the current runtime. `answer` gets a batch of at most `most`
    /// items, in order of arrival, and returns one answer per item, in the same order.
    pub fn start<F, Fut>(lanes: usize, most: usize, answer: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let most = most.max(1);
        let (sender, receiver) = mpsc::channel(most * lanes.max(1) * 2);
        let receiver = Arc::new(Mutex::new(receiver));
        let answer = Arc::new(answer);
        for _ in 0..lanes.max(1) {
            let receiver = receiver.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                while let Some(batch) = next(&receiver, most).await {
                    let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) =
                        batch.into_iter().unzip();
                    let answers = answer(items).await;
                    debug_assert_eq!(answers.len(), replies.len(), "one answer per item");
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        // A caller that stopped waiting (its request was dropped) is no error.
                        let _ = reply.send(answer);
                    }
                }
            });
        }
        Self { sender }
    }

    /// `item`'s answer, or `None` once the lanes are gone (the runtime is shutting down) or
    /// the batch it was in was not answered.
    pub async fn call(&self, item: T) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((item, reply)).await.ok()?;
        answer.await.ok()
    }
}

/// The next batch: one call awaited, then whatever else is waiting, up to `most`.
async fn next<T, R>(
    receiver: &Mutex<mpsc::Receiver<Call<T, R>>>,
    most: usize,
) -> Option<Vec<Call<T, R>>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < most {
        match receiver.try_recv() {
            Ok(call) => batch.push(call),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_waiting_together_share_a_batch_and_get_their_own_answers() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let batcher = Batcher::start(1, 100, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            let mut gate = gate_rx.clone();
            async move {
                // The first batch waits until the others are queued behind it.
                let _ = gate.wait_for(|open| *open).await;
                items.into_iter().map(|n| n * 10).collect()
            }
        });
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.call(1).await }
        });
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..=20)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.call(n).await })
            })
            .collect();
        while batcher.sender.capacity() > batcher.sender.max_capacity() - 19 {
            tokio::task::yield_now().await;
        }
        gate_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap(), Some(10));
        for (n, call) in (2..=20).zip(rest) {
            assert_eq!(call.await.unwrap(), Some(n * 10));
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 19]);
    }

    #[tokio::test]
    async fn a_batch_is_never_larger_than_most() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::start(1, 4, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move { items }
        });
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.call(n).await })
            })
            .collect();
        for (n, call) in (0..10).zip(calls) {
            assert_eq!(call.await.unwrap(), Some(n));
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 10);
        assert!(sizes.iter().all(|&s| s <= 4), "{sizes:?}");
    }
}
