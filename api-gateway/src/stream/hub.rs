//! The hub: each gateway's one reader of the stream log, handing every new entry to the open
//! streams of the users who may see it. A stream whose client does not keep up (its buffer of
//! `stream.client_buffer` entries is full) is dropped rather than buffered without bound; the
//! client reconnects with `Last-Event-ID` and resumes from the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use shared::backoff::{Backoff, Policy};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::log::{self, Entry};

/// The gap between reads of the stream log while Redis cannot be read.
const READ_RETRY_GAP: Duration = Duration::from_millis(500);

/// One open stream's way in: its id in the hub and its buffer.
type Inlet = (u64, mpsc::Sender<Arc<Entry>>);

/// Streams open on this gateway, by user.
pub struct Hub {
    streams: Mutex<HashMap<Uuid, Vec<Inlet>>>,
    next_id: AtomicU64,
    /// Ends every stream when the gateway shuts down (graceful shutdown waits for them).
    shutdown: CancellationToken,
}

/// A stream's place in the hub; dropping it leaves.
pub struct Registration {
    hub: Arc<Hub>,
    user: Uuid,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(self.user, self.id);
    }
}

impl Hub {
    pub fn new(shutdown: CancellationToken) -> Self {
        // Exposed from the start (0 streams), not only once the first opens.
        metrics::gauge!("taskmesh_stream_connections").increment(0.0);
        Self {
            streams: Mutex::default(),
            next_id: AtomicU64::new(0),
            shutdown,
        }
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Streams open on this gateway.
    pub fn open_streams(&self) -> usize {
        self.streams
            .lock()
            .expect("hub lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Joins `user`'s stream to the hub: from now on every new entry they may see arrives on
    /// the receiver, until it falls `buffer` entries behind and is closed.
    pub fn register(
        self: &Arc<Self>,
        user: Uuid,
        buffer: usize,
    ) -> (Registration, mpsc::Receiver<Arc<Entry>>) {
        let (tx, rx) = mpsc::channel(buffer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.streams
            .lock()
            .expect("hub lock")
            .entry(user)
            .or_default()
            .push((id, tx));
        metrics::gauge!("taskmesh_stream_connections").increment(1.0);
        let registration = Registration {
            hub: self.clone(),
            user,
            id,
        };
        (registration, rx)
    }

    fn remove(&self, user: Uuid, id: u64) {
        let mut streams = self.streams.lock().expect("hub lock");
        if let Some(list) = streams.get_mut(&user) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                streams.remove(&user);
            }
        }
        // Counted from the hub's size: a dropped stream has left it already.
        metrics::gauge!("taskmesh_stream_connections")
            .set(streams.values().map(Vec::len).sum::<usize>() as f64);
    }

    /// Hands `entry` to the streams of its audience; a full one is closed (its sender dropped).
    pub fn dispatch(&self, entry: &Arc<Entry>) {
        let mut streams = self.streams.lock().expect("hub lock");
        for user in &entry.users {
            let Some(list) = streams.get_mut(user) else {
                continue;
            };
            list.retain(|(_, tx)| match tx.try_send(entry.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("taskmesh_stream_dropped_total").increment(1);
                    tracing::info!(%user, "a stream fell too far behind; dropped");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }

    /// Reads the log from its end onwards and dispatches every entry, until `shutdown`. Its
    /// own Redis connection, since a blocking read holds the connection it runs on.
    pub async fn run(self: Arc<Self>, mut redis: ConnectionManager, prefix: String) {
        let shutdown = self.shutdown.clone();
        // From the log's end as it is now (not `$`, which between two reads would skip what
        // was appended in between): every later entry, however the reads fall.
        let mut last: Option<String> = None;
        let mut logged = false;
        let mut backoff = Backoff::new(Policy::exponential(READ_RETRY_GAP, READ_RETRY_GAP));
        while !shutdown.is_cancelled() {
            let read = match last.clone() {
                None => log::bounds(&redis, &prefix).await.map(|bounds| {
                    last = Some(bounds.map_or_else(|| "0-0".to_string(), |(_, newest)| newest));
                    Vec::new()
                }),
                Some(after) => tokio::select! {
                    _ = shutdown.cancelled() => break,
                    read = log::read_blocking(&mut redis, &prefix, &after, 1000, 500) => read,
                },
            };
            match read {
                Ok(entries) => {
                    logged = false;
                    backoff.reset();
                    if let Some(newest) = entries.last() {
                        last = Some(newest.id.clone());
                    }
                    for entry in &entries {
                        self.dispatch(entry);
                    }
                }
                Err(err) => {
                    if !logged {
                        tracing::warn!(error = %err, "cannot read the stream log; retrying");
                        logged = true;
                    }
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
    }
}

/// Each user's open streams across every gateway, in Redis: a sorted set of stream ids scored
/// by when their lease runs out, renewed while the stream lives, so that a crashed gateway's
/// streams stop counting once their leases end.
pub struct Leases;

const ACQUIRE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

impl Leases {
    /// The streams `user` has open, across every gateway.
    pub fn user_key(prefix: &str, user: Uuid) -> String {
        format!("{prefix}stream:streams:{user}")
    }

    /// The streams opened from the client address `ip`, across every gateway.
    pub fn address_key(prefix: &str, ip: &str) -> String {
        format!("{prefix}stream:streams-from:{ip}")
    }

    /// Takes one of the `max` stream slots under `key` for `lease`; `false` when all are taken.
    pub async fn acquire(
        redis: &ConnectionManager,
        key: &str,
        stream: &str,
        max: u32,
        lease: Duration,
    ) -> redis::RedisResult<bool> {
        let now = chrono::Utc::now().timestamp_millis();
        let lease_ms = lease.as_millis() as i64;
        let mut conn = redis.clone();
        let taken: i64 = redis::Script::new(ACQUIRE)
            .key(key)
            .arg(now)
            .arg(now + lease_ms)
            .arg(max)
            .arg(stream)
            .arg(lease_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(taken == 1)
    }

    /// Extends the lease of a live stream.
    pub async fn renew(
        redis: &ConnectionManager,
        key: &str,
        stream: &str,
        lease: Duration,
    ) -> redis::RedisResult<()> {
        let expires = chrono::Utc::now().timestamp_millis() + lease.as_millis() as i64;
        let mut conn = redis.clone();
        // Not `XX`: a lease lost with Redis's data comes back, so the stream counts again.
        redis::pipe()
            .cmd("ZADD")
            .arg(key)
            .arg(expires)
            .arg(stream)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(lease.as_millis() as u64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// Gives the slot back.
    pub async fn release(redis: &ConnectionManager, key: &str, stream: &str) {
        let mut conn = redis.clone();
        let _ = redis::cmd("ZREM")
            .arg(key)
            .arg(stream)
            .query_async::<()>(&mut conn)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, users: &[Uuid]) -> Arc<Entry> {
        Arc::new(Entry {
            id: id.into(),
            event_type: "task.updated".into(),
            data: "{}".into(),
            users: users.to_vec(),
            task: None,
        })
    }

    #[tokio::test]
    async fn a_stream_gets_its_users_entries_only_and_is_dropped_when_it_falls_behind() {
        let hub = Arc::new(Hub::new(CancellationToken::new()));
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (_ada_in, mut adas) = hub.register(ada, 2);
        let (_bob_in, mut bobs) = hub.register(bob, 2);
        hub.dispatch(&entry("1-0", &[ada]));
        hub.dispatch(&entry("2-0", &[ada, bob]));
        assert_eq!(bobs.recv().await.unwrap().id, "2-0");
        // Ada has read nothing: her buffer of 2 is full, so the third entry drops her stream.
        hub.dispatch(&entry("3-0", &[ada]));
        assert_eq!(adas.recv().await.unwrap().id, "1-0");
        assert_eq!(adas.recv().await.unwrap().id, "2-0");
        assert!(adas.recv().await.is_none(), "dropped, not buffered further");
        assert_eq!(hub.open_streams(), 1);
        drop(_bob_in);
        assert_eq!(hub.open_streams(), 0);
    }
}
