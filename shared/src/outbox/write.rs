//! Writing events to the outbox inside the transaction of the change they announce.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::message::{Grouped, Pending, Route, GROUP_KEY, GROUP_MAX};
use crate::events::{CloudEvent, EventPayload};

/// Writes `event` to the outbox inside `tx`; it is published once `tx` commits.
pub async fn enqueue<T: EventPayload>(
    tx: &mut PgConnection,
    event: CloudEvent<T>,
) -> Result<Uuid, sqlx::Error> {
    enqueue_at(tx, event, None).await
}

/// Like [`enqueue`], but not published before `available_at`.
pub async fn enqueue_at<T: EventPayload>(
    tx: &mut PgConnection,
    event: CloudEvent<T>,
    available_at: Option<DateTime<Utc>>,
) -> Result<Uuid, sqlx::Error> {
    let route = Route {
        available_at,
        ..Route::default()
    };
    enqueue_routed(tx, event, route).await
}

/// Writes `event` to the outbox inside `tx` in a row of its own, published as `route` says
/// once `tx` commits.
pub async fn enqueue_routed<T: EventPayload>(
    tx: &mut PgConnection,
    event: CloudEvent<T>,
    route: Route,
) -> Result<Uuid, sqlx::Error> {
    let pending = Pending::new(event, route)?;
    let id = pending.event.id;
    insert(tx, vec![Row::single(pending)?]).await?;
    Ok(id)
}

/// Writes several events of one type in one statement (the batch paths), due at once.
pub async fn enqueue_many<T: EventPayload>(
    tx: &mut PgConnection,
    events: Vec<CloudEvent<T>>,
) -> Result<(), sqlx::Error> {
    let rows = events
        .into_iter()
        .map(|event| Pending::new(event, Route::default()))
        .collect::<Result<Vec<_>, _>>()?;
    enqueue_all(tx, rows).await
}

/// Whether this process writes group rows (`outbox.group_rows`; see [`set_grouping`]).
static GROUPING: AtomicBool = AtomicBool::new(false);

/// Makes [`enqueue_all`] and [`enqueue_many`] write a call's messages due at once as group rows
/// (on), or each in a row of its own (off, the default: what relays of earlier versions read).
/// Set once at start from `outbox.group_rows`.
pub fn set_grouping(on: bool) {
    GROUPING.store(on, Ordering::Relaxed);
}

/// Asks the relay to publish what `tx` writes as soon as it commits, without lingering for more
/// commits (a workflow's next step waits on it). Call it before writing the rows: a
/// transaction's notifications arrive in the order they were made.
pub async fn wake_now(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::message::NOTIFY_CHANNEL)
        .bind(super::message::NOTIFY_NOW)
        .execute(tx)
        .await?;
    Ok(())
}

/// Writes several events, of any types and routes, in one statement: with grouping on, those
/// due at once share group rows when there are several; every other one gets a row of its own.
pub async fn enqueue_all(tx: &mut PgConnection, rows: Vec<Pending>) -> Result<(), sqlx::Error> {
    if !GROUPING.load(Ordering::Relaxed) {
        let rows = rows.into_iter().map(Row::single);
        return insert(tx, rows.collect::<Result<Vec<_>, _>>()?).await;
    }
    let (now, later): (Vec<Pending>, Vec<Pending>) = rows
        .into_iter()
        .partition(|p| p.route.available_at.is_none());
    let mut out = Vec::with_capacity(later.len() + 1);
    if now.len() == 1 {
        out.extend(now.into_iter().map(Row::single));
    } else {
        let mut now = now.into_iter().peekable();
        while now.peek().is_some() {
            out.push(Row::group(now.by_ref().take(GROUP_MAX)));
        }
    }
    out.extend(later.into_iter().map(Row::single));
    insert(tx, out.into_iter().collect::<Result<Vec<_>, _>>()?).await
}

/// An outbox row to insert.
struct Row {
    id: Uuid,
    routing_key: String,
    payload: serde_json::Value,
    available_at: Option<DateTime<Utc>>,
    priority: Option<i16>,
    messages: i32,
}

fn encode<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::to_value(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

impl Row {
    fn single(Pending { event, route }: Pending) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: event.id,
            routing_key: route
                .routing_key
                .unwrap_or_else(|| event.event_type.clone()),
            payload: encode(&event)?,
            available_at: route.available_at,
            priority: route.priority.map(i16::from),
            messages: 1,
        })
    }

    /// One row for `pending`, all due at once.
    fn group(pending: impl Iterator<Item = Pending>) -> Result<Self, sqlx::Error> {
        let messages: Vec<serde_json::Value> = pending
            .map(|Pending { event, route }| {
                encode(&Grouped {
                    id: event.id,
                    routing_key: route
                        .routing_key
                        .unwrap_or_else(|| event.event_type.clone()),
                    priority: route.priority,
                    event: &event,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            id: Uuid::now_v7(),
            routing_key: GROUP_KEY.into(),
            messages: messages.len() as i32,
            payload: serde_json::Value::Array(messages),
            available_at: None,
            priority: None,
        })
    }
}

async fn insert(tx: &mut PgConnection, rows: Vec<Row>) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    let mut available = Vec::with_capacity(rows.len());
    let mut priorities = Vec::with_capacity(rows.len());
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.id);
        keys.push(row.routing_key);
        payloads.push(row.payload);
        available.push(row.available_at);
        priorities.push(row.priority);
        counts.push(row.messages);
    }
    sqlx::query(
        "INSERT INTO outbox (id, routing_key, payload, available_at, priority, messages)
         SELECT id, key, payload, COALESCE(at, clock_timestamp()), priority, messages
           FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::int2[],
                       $6::int4[]) AS e(id, key, payload, at, priority, messages)",
    )
    .bind(&ids)
    .bind(&keys)
    .bind(&payloads)
    .bind(&available)
    .bind(&priorities)
    .bind(&counts)
    .execute(tx)
    .await?;
    Ok(())
}
