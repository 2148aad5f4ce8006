//! The memory thumbnails may hold at once (`files.thumbnail_memory_bytes`): an image's source
//! is reserved before it is read, its decoding before it starts, and both are given back when it
//! ends, so a few large images wait their turn (holding nothing) instead of running the service
//! out of memory together.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in KiB (a semaphore counts up to `u32::MAX` permits).
const UNIT: u64 = 1024;

/// The budget, shared by every thumbnail of the process (cheap to clone).
#[derive(Clone)]
pub struct DecodeMemory {
    permits: Arc<Semaphore>,
    units: u64,
    bytes: u64,
}

impl DecodeMemory {
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, u64::from(u32::MAX)) as u32;
        Self {
            permits: Arc::new(Semaphore::new(units as usize)),
            units: u64::from(units),
            bytes,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Waits until `bytes` are free and holds them until the permit is dropped; `None` when
    /// `bytes` is more than the whole budget (it would never be free).
    pub async fn reserve(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let units = bytes.div_ceil(UNIT).max(1);
        if units > self.units {
            return None;
        }
        let units = u32::try_from(units).ok()?;
        self.permits.clone().acquire_many_owned(units).await.ok()
    }

    /// Brings `held` up to `bytes` if that much more is free now, without waiting: a holder that
    /// waited for more while holding some could wait forever on others doing the same.
    pub fn top_up(&self, held: &mut OwnedSemaphorePermit, bytes: u64) -> bool {
        let units = bytes.div_ceil(UNIT).max(1);
        let more = units.saturating_sub(held.num_permits() as u64);
        if more == 0 {
            return true;
        }
        let Ok(more) = u32::try_from(more) else {
            return false;
        };
        match self.permits.clone().try_acquire_many_owned(more) {
            Ok(permit) => {
                held.merge(permit);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_reservation_waits_for_memory_and_one_larger_than_the_budget_is_refused() {
        let memory = DecodeMemory::new(10 * UNIT);
        let first = memory.reserve(6 * UNIT).await.expect("fits");
        // 6 of 10 KiB are held: another 6 waits until they are given back, 4 do not.
        assert!(memory.reserve(6 * UNIT).now_or_never().is_none(), "waits");
        assert!(memory.reserve(4 * UNIT).await.is_some());
        drop(first);
        assert!(memory.reserve(6 * UNIT).now_or_never().flatten().is_some());
        assert!(
            memory.reserve(10 * UNIT).await.is_some(),
            "the whole budget"
        );
        assert!(
            memory.reserve(10 * UNIT + 1).await.is_none(),
            "more than the budget"
        );
    }

    #[tokio::test]
    async fn a_top_up_takes_what_is_free_now_or_nothing() {
        let memory = DecodeMemory::new(10 * UNIT);
        let mut held = memory.reserve(2 * UNIT).await.unwrap();
        let other = memory.reserve(5 * UNIT).await.unwrap();
        assert!(
            !memory.top_up(&mut held, 6 * UNIT),
            "3 KiB free, 4 more asked"
        );
        assert_eq!(held.num_permits(), 2, "nothing taken");
        assert!(memory.top_up(&mut held, 5 * UNIT));
        assert_eq!(held.num_permits(), 5);
        drop(other);
        assert!(memory.top_up(&mut held, 10 * UNIT));
        assert!(
            memory.reserve(UNIT).now_or_never().is_none(),
            "all of it held"
        );
    }
}
