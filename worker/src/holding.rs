//! What a pool consumer holds of its queue: how many dispatches (its prefetch) and, among those
//! not started yet, which starts next (the most urgent).
//!
//! A dispatch stays unacked until its report is confirmed, so the prefetch covers three kinds:
//! running, waiting for a slot, and finished but waiting for the broker's confirm of the report.
//! With `workers.prefetch` 0 the consumer holds four per slot for the first two, so a worker of
//! long jobs does not hoard what another could run, and makes room for the third as it grows:
//! whenever the finished ones take all that the running ones leave, the prefetch doubles (up to
//! sixteen per slot), and once they need less than a quarter of it for a second it halves
//! again. RabbitMQ applies a prefetch when a consumer starts, so a change ends the consumer and
//! starts another on the same channel; what the consumer holds stays held.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};

/// Dispatches held per slot, running or waiting, with `workers.prefetch` 0.
const PER_SLOT: usize = 4;
/// The most the prefetch grows to, per slot, for finished dispatches awaiting confirms.
const MAX_PER_SLOT: usize = 16;
/// How often a consumer looks at what its finished dispatches need.
pub const TICK: Duration = Duration::from_millis(100);
/// Ticks of little need before the prefetch halves.
const QUIET_TICKS: u32 = 10;

/// The finished dispatches of one pool consumer awaiting their report's confirm, with the most
/// seen since the last look.
#[derive(Debug, Default)]
pub struct Awaiting {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// One finished dispatch awaiting its confirm (and its ack); counted until dropped.
pub struct AwaitingOne<'a>(&'a Awaiting);

impl Awaiting {
    pub fn enter(&self) -> AwaitingOne<'_> {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        AwaitingOne(self)
    }

    /// The most awaiting at once since the last call.
    pub fn take_peak(&self) -> usize {
        let now = self.now.load(Ordering::Relaxed);
        self.peak.swap(now, Ordering::Relaxed).max(now)
    }
}

impl Drop for AwaitingOne<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The prefetch of one pool consumer.
#[derive(Debug)]
pub struct Window {
    concurrency: usize,
    /// `workers.prefetch` when set: never changed.
    fixed: bool,
    current: u16,
    quiet: u32,
}

impl Window {
    pub fn new(concurrency: usize, configured: u16) -> Self {
        let fixed = configured != 0;
        let current = match fixed {
            true => configured,
            false => per_slot(concurrency, PER_SLOT),
        };
        Self {
            concurrency,
            fixed,
            current,
            quiet: 0,
        }
    }

    pub fn current(&self) -> u16 {
        self.current
    }

    /// Whether the prefetch follows the finished dispatches' need (`workers.prefetch` 0).
    pub fn adapts(&self) -> bool {
        !self.fixed
    }

    /// The prefetch for what comes next, given the most finished dispatches awaiting confirms
    /// since the last look; `Some` when it changes.
    pub fn next(&mut self, awaiting_peak: usize) -> Option<u16> {
        if self.fixed {
            return None;
        }
        let (base, max) = (
            per_slot(self.concurrency, PER_SLOT),
            per_slot(self.concurrency, MAX_PER_SLOT),
        );
        let needed = awaiting_peak.saturating_add(self.concurrency);
        let current = usize::from(self.current);
        if needed >= current && self.current < max {
            self.quiet = 0;
            self.current = u16::try_from(current * 2).unwrap_or(u16::MAX).min(max);
            return Some(self.current);
        }
        if needed.saturating_mul(4) > current || self.current <= base {
            self.quiet = 0;
            return None;
        }
        self.quiet += 1;
        if self.quiet < QUIET_TICKS {
            return None;
        }
        self.quiet = 0;
        self.current = (self.current / 2).max(base);
        Some(self.current)
    }
}

fn per_slot(concurrency: usize, per_slot: usize) -> u16 {
    u16::try_from(concurrency.saturating_mul(per_slot))
        .unwrap_or(u16::MAX)
        .max(1)
}

/// A dispatch held until a slot is free, ordered by AMQP priority, then arrival.
pub struct Waiting {
    priority: u8,
    seq: std::cmp::Reverse<u64>,
    pub delivery: Delivery,
}

impl Waiting {
    pub fn new(delivery: Delivery, seq: u64) -> Self {
        Self {
            priority: delivery.properties.priority().unwrap_or(0),
            seq: std::cmp::Reverse(seq),
            delivery,
        }
    }
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

/// A pool's consumer on its channel, started again under another tag when its prefetch changes.
pub struct Consumer<'a> {
    channel: &'a lapin::Channel,
    queue: &'a str,
    /// The consumer tag's stem; the n-th restart consumes as `<base>~<n>`.
    base: String,
    tag: String,
    spell: u32,
}

/// How long the old consumer's last deliveries may take to arrive after its cancel.
const RESTART_DRAIN: Duration = Duration::from_secs(5);

impl<'a> Consumer<'a> {
    pub fn new(channel: &'a lapin::Channel, queue: &'a str, base: String) -> Self {
        Self {
            channel,
            queue,
            tag: base.clone(),
            base,
            spell: 0,
        }
    }

    /// The tag the consumer runs under now.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub async fn start(&mut self, prefetch: u16) -> Result<lapin::Consumer, lapin::Error> {
        self.channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        self.channel
            .basic_consume(
                self.queue,
                &self.tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    /// Ends the consumer and starts another with `prefetch`; returns what the old one was sent
    /// before its cancel took effect (unacked on the channel, so still this worker's to run).
    pub async fn restart(
        &mut self,
        deliveries: &mut lapin::Consumer,
        prefetch: u16,
    ) -> Result<Vec<Delivery>, lapin::Error> {
        self.channel
            .basic_cancel(&self.tag, BasicCancelOptions::default())
            .await?;
        let mut held = Vec::new();
        let drained = tokio::time::timeout(RESTART_DRAIN, async {
            while let Some(next) = deliveries.next().await {
                held.push(next?);
            }
            Ok::<_, lapin::Error>(())
        })
        .await;
        match drained {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(queue = %self.queue, "a cancelled consumer did not end; starting the next one anyway")
            }
        }
        self.spell += 1;
        self.tag = format!("{}~{}", self.base, self.spell);
        *deliveries = self.start(prefetch).await?;
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_prefetch_never_changes() {
        let mut window = Window::new(16, 30);
        assert_eq!(window.current(), 30);
        assert!(!window.adapts());
        assert_eq!(window.next(1_000), None);
        assert_eq!(window.next(0), None);
    }

    #[test]
    fn quick_jobs_widen_it_up_to_sixteen_per_slot() {
        let mut window = Window::new(16, 0);
        assert_eq!(window.current(), 64);
        // 48 finished awaiting confirms beside 16 running: the window is full of them.
        assert_eq!(window.next(48), Some(128));
        assert_eq!(window.next(112), Some(256));
        assert_eq!(window.next(240), None, "sixteen per slot at most");
        assert_eq!(window.current(), 256);
    }

    #[test]
    fn long_jobs_keep_four_per_slot() {
        let mut window = Window::new(16, 0);
        for _ in 0..100 {
            assert_eq!(window.next(3), None);
        }
        assert_eq!(window.current(), 64);
    }

    #[test]
    fn it_halves_after_a_quiet_second_and_not_before() {
        let mut window = Window::new(16, 0);
        window.next(48);
        window.next(112);
        assert_eq!(window.current(), 256);
        // Needed 16 + 40 = 56: under a quarter of 256.
        for _ in 1..QUIET_TICKS {
            assert_eq!(window.next(40), None);
        }
        assert_eq!(window.next(40), Some(128));
        // A busy moment resets the count.
        for _ in 1..QUIET_TICKS {
            assert_eq!(window.next(0), None);
        }
        assert_eq!(window.next(20), None, "16 + 20 is over a quarter of 128");
        for _ in 1..QUIET_TICKS {
            assert_eq!(window.next(0), None);
        }
        assert_eq!(window.next(0), Some(64));
        for _ in 0..QUIET_TICKS * 2 {
            assert_eq!(window.next(0), None, "never under four per slot");
        }
    }

    #[test]
    fn the_peak_is_the_most_since_the_last_look() {
        let awaiting = Awaiting::default();
        let a = awaiting.enter();
        let b = awaiting.enter();
        drop(a);
        assert_eq!(awaiting.take_peak(), 2);
        assert_eq!(awaiting.take_peak(), 1, "b is still awaiting");
        drop(b);
        assert_eq!(awaiting.take_peak(), 1, "b was there since the last look");
        assert_eq!(awaiting.take_peak(), 0);
    }
}
