//! One stream, from opening to end: a place under this gateway's `stream.max_streams`, a lease
//! among the user's `stream.max_streams_per_user` and one among its client address's
//! `stream.max_streams_per_address`, a place in the hub, then `ready`, the entries missed since `Last-Event-ID` (read from the
//! log a page at a time, so a long absence costs no memory), and the live entries. It ends when
//! the client goes, falls too far behind, its session ends or the gateway shuts down.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use redis::aio::ConnectionManager;
use serde_json::json;
use shared::{identity::Identity, ApiError};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use shared::events::{EventPayload, TaskDeleted};

use super::feed;
use super::hub::{Leases, Registration};
use super::log::{self, Entry};
use crate::AppState;

/// Entries read from the log per page while catching up.
const PAGE: usize = 500;

/// Gives the lease back when the stream ends, however it ends.
/// The stream's slots: among its user's streams and among its client address's.
struct Lease {
    redis: ConnectionManager,
    keys: Vec<String>,
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (redis, keys, id) = (
            self.redis.clone(),
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.id),
        );
        tokio::spawn(async move {
            for key in keys {
                Leases::release(&redis, &key, &id).await;
            }
        });
    }
}

pub struct Session {
    identity: Identity,
    http: reqwest::Client,
    trust: Arc<shared::internal::Trust>,
    task_url: String,
    redis: ConnectionManager,
    prefix: String,
    heartbeat: Duration,
    shutdown: CancellationToken,
    lease: Lease,
    _registration: Registration,
    live: mpsc::Receiver<Arc<Entry>>,
    /// Catching up: the last entry read from the log; `None` once caught up.
    cursor: Option<String>,
    /// The newest entry sent: live entries up to it were sent while catching up.
    sent: Option<String>,
    pending: VecDeque<Event>,
    checks: tokio::time::Interval,
    /// The ends of sessions this gateway hears of (taken before the stream opened).
    ends: broadcast::Receiver<Uuid>,
    /// Its session ended: `session_ended` was sent, and the stream ends.
    ended: bool,
    /// An admin's `stats` ticks.
    stats: Option<tokio::time::Interval>,
}

/// The next tick of `interval`, or never.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn event(entry: &Entry) -> Event {
    Event::default()
        .id(entry.id.clone())
        .event(entry.event_type.clone())
        .data(entry.data.clone())
}

impl Session {
    pub async fn open(
        state: &AppState,
        identity: Identity,
        client: &str,
        resume: Option<String>,
        stats: bool,
    ) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
        let config = &state.config.stream;
        // Before anything is asked of Redis, so that no end heard meanwhile is missed.
        let ends = state.known.ends();
        let prefix = state.config.redis.key_prefix.clone();
        let redis = state.redis.clone();
        let heartbeat = Duration::from_secs(config.heartbeat_secs);
        let lease_for = heartbeat * 3;
        let id = Uuid::new_v4().to_string();
        let user = identity.user_id;
        let down = |e: redis::RedisError| {
            tracing::warn!(error = %e, "stream: redis unavailable");
            ApiError::unavailable("redis")
        };
        // This gateway's own bound first: it costs nothing to check.
        if state.hub.open_streams() >= config.max_streams as usize {
            return Err(streams_full(config.max_streams));
        }
        let mut lease = Lease {
            redis: redis.clone(),
            keys: Vec::with_capacity(2),
            id,
        };
        // The user's slots, then the address's: many accounts behind one address (or made up
        // by the dozen) are bounded too. A slot taken goes back with `lease` if a later one is
        // refused.
        type Refusal = fn(u32) -> ApiError;
        let slots: [(String, u32, Refusal); 2] = [
            (
                Leases::user_key(&prefix, user),
                config.max_streams_per_user,
                too_many_streams,
            ),
            (
                Leases::address_key(&prefix, &shared::identity::source_of(client)),
                config.max_streams_per_address,
                too_many_streams_from_address,
            ),
        ];
        for (key, max, refused) in slots {
            if !Leases::acquire(&redis, &key, &lease.id, max, lease_for)
                .await
                .map_err(down)?
            {
                return Err(refused(max));
            }
            lease.keys.push(key);
        }
        // In the hub before the log is read: nothing appended from here on can be missed.
        let (registration, live) = state.hub.register(user, config.client_buffer);
        let bounds = log::bounds(&redis, &prefix).await.map_err(down)?;
        let head = bounds.as_ref().map(|(_, last)| last.clone());
        let mut pending = VecDeque::new();
        let mut ready = json!({ "last_event_id": head });
        let cursor = match resume {
            // Nothing older than the oldest entry is left: if the client's last event is older,
            // some in between may be gone.
            // One newer than the newest was never sent here (the log was lost, say): the
            // client must reload too.
            Some(after) => match &bounds {
                Some((first, last))
                    if !log::is_after(first, &after) && !log::is_after(&after, last) =>
                {
                    Some(after)
                }
                _ => {
                    pending.push_back(Event::default().event("reset").data(
                        json!({ "reason": "events after Last-Event-ID are past the retention window; reload" })
                            .to_string(),
                    ));
                    None
                }
            },
            None => None,
        };
        if cursor.is_none() {
            // Resuming later starts here.
            ready["resumed"] = json!(false);
        } else {
            ready["resumed"] = json!(true);
        }
        let mut hello = Event::default()
            .event("ready")
            .retry(Duration::from_secs(3))
            .data(ready.to_string());
        if cursor.is_none() {
            if let Some(head) = &head {
                hello = hello.id(head.clone());
            }
        }
        pending.push_front(hello);
        let mut checks = tokio::time::interval(heartbeat);
        checks.tick().await; // the first tick is immediate
        let session = Session {
            identity,
            http: state.http.clone(),
            trust: state.trust.clone(),
            task_url: state.config.task.url.clone(),
            redis,
            prefix,
            heartbeat,
            shutdown: state.hub.shutdown().clone(),
            lease,
            _registration: registration,
            live,
            // Not resuming: `ready` stands for everything up to the head, so the hub's entries
            // up to it (appended before `bounds` was read) are not sent again.
            sent: cursor.clone().or(head),
            cursor,
            pending,
            checks,
            ends,
            ended: false,
            stats: stats.then(|| tokio::time::interval(super::stats::STATS_EVERY)),
        };
        metrics::counter!("taskmesh_streams_opened_total").increment(1);
        let stream = futures::stream::unfold(session, |mut s| async move {
            s.next().await.map(|e| (Ok(e), s))
        });
        Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("keep-alive")))
    }

    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.shutdown.is_cancelled() || self.ended {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if let Some(after) = self.cursor.clone() {
                self.catch_up(&after).await?;
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                entry = self.live.recv() => {
                    // Closed: the client fell too far behind and was dropped.
                    let entry = entry?;
                    if self.sent.as_deref().is_some_and(|sent| !log::is_after(&entry.id, sent)) {
                        continue; // already sent while catching up
                    }
                    self.sent = None;
                    return Some(event(&entry));
                }
                _ = self.checks.tick() => {
                    if !self.check().await {
                        return Some(self.session_ended());
                    }
                }
                end = self.ends.recv() => {
                    let ended = match end {
                        Ok(session) => self.identity.session_id == Some(session),
                        // Missed some: Redis knows.
                        Err(broadcast::error::RecvError::Lagged(_)) => !self.check().await,
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    if ended {
                        return Some(self.session_ended());
                    }
                }
                _ = tick(&mut self.stats) => {
                    let snapshot = super::stats::snapshot(
                        &self.http, &self.trust, &self.task_url, &self.identity,
                    );
                    if let Some(event) = snapshot.await {
                        return Some(event);
                    }
                }
            }
        }
    }

    /// Reads the next page of the log after `after` into `pending`.
    async fn catch_up(&mut self, after: &str) -> Option<()> {
        let page = match log::after(&self.redis, &self.prefix, after, PAGE).await {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(error = %err, "stream: cannot read the log to catch up; closing");
                return None;
            }
        };
        let user = self.identity.user_id;
        self.cursor = page
            .last()
            .map(|e| e.id.clone())
            .filter(|_| page.len() == PAGE);
        if let Some(last) = page.last() {
            self.sent = Some(last.id.clone());
        }
        let mine: Vec<&Entry> = page.iter().filter(|e| e.visible_to(user)).collect();
        // An entry's audience is who could see its task when it was written; catching up, the
        // user must still be able to see the task now (a member who left a channel is shown
        // none of what happened in it while they were away).
        let rechecked = |e: &Entry| e.event_type != TaskDeleted::TYPE && e.task.is_some();
        let tasks: BTreeSet<Uuid> = mine
            .iter()
            .filter(|e| rechecked(e))
            .filter_map(|e| e.task)
            .collect();
        let now = match tasks.is_empty() {
            true => Default::default(),
            false => {
                match feed::task_audiences(&self.http, &self.trust, &self.task_url, &tasks).await {
                    Ok(now) => now,
                    Err(err) => {
                        tracing::warn!(error = %err, "stream: cannot check audiences to catch up; closing");
                        return None;
                    }
                }
            }
        };
        for entry in mine {
            let visible = !rechecked(entry)
                || entry
                    .task
                    .and_then(|task| now.get(&task))
                    .is_some_and(|users| users.binary_search(&user).is_ok());
            if visible {
                self.pending.push_back(event(entry));
            }
        }
        Some(())
    }

    /// The last event: the session ended (a logout everywhere, a new password or role, a
    /// deactivation), so the client knows why the stream ends and does not reconnect.
    fn session_ended(&mut self) -> Event {
        self.ended = true;
        Event::default().event("session_ended").data("{}")
    }

    /// Every heartbeat (and after missing ends): whether the session is still live; the lease is
    /// renewed.
    async fn check(&mut self) -> bool {
        if let Some(session) = self.identity.session_id {
            if let Ok(false) = shared::sessions::is_live(&self.redis, &self.prefix, session).await {
                return false;
            }
        }
        let lease = &self.lease;
        for key in &lease.keys {
            let _ = Leases::renew(&self.redis, key, &lease.id, self.heartbeat * 3).await;
        }
        true
    }
}

/// 429 for one stream too many.
fn too_many_streams(max: u32) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
        format!("at most {max} streams per user are open at once (stream.max_streams_per_user); close one"),
    )
}

/// 429 for one stream too many from one client address, whoever's they are.
fn too_many_streams_from_address(max: u32) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams_from_address",
        format!("at most {max} streams are open at once from one address (stream.max_streams_per_address); close one"),
    )
}

/// 503 when this gateway holds all the streams it may.
fn streams_full(max: u32) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "streams_full",
        format!(
            "this gateway has {max} streams open, its most (stream.max_streams); try again shortly"
        ),
    )
}
