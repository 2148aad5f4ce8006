//! The only code that writes SQL for deliveries (`webhook_deliveries`, `webhook_attempts`)
//! and for an endpoint's failure state; an endpoint's own row is [`super::endpoint_store`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::events::CloudEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::model::DeliveryState;
use crate::domain::Kind;

/// A delivery as its endpoint's owner sees it (without the log).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Endpoint `endpoint_id`'s deliveries, newest first, older than `before` if given.
pub async fn deliveries_page(
    pool: &PgPool,
    endpoint_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event_id, event_type, state, attempts, next_attempt_at, last_status,
                created_at, updated_at
           FROM webhook_deliveries
          WHERE endpoint_id = $1 AND ($2::uuid IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3",
    )
    .bind(endpoint_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One line of a delivery's attempt log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
}

/// The attempt logs of `deliveries`, oldest attempt first.
pub async fn attempts_of(
    pool: &PgPool,
    deliveries: &[Uuid],
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT delivery_id, at, status, error, latency_ms, response_excerpt FROM (
            SELECT *, row_number() OVER (PARTITION BY delivery_id ORDER BY id DESC) AS nth
              FROM webhook_attempts WHERE delivery_id = ANY($1)) recent
          WHERE nth <= 20 ORDER BY id",
    )
    .bind(deliveries)
    .fetch_all(pool)
    .await
}

/// Queues delivery `id` of endpoint `endpoint_id` again now, with a fresh run of the schedule:
/// `Some(true)`; `Some(false)` when an attempt of it is running (nothing changed); `None` when
/// the endpoint has no such delivery.
pub async fn redeliver(
    pool: &PgPool,
    endpoint_id: Uuid,
    id: Uuid,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH target AS (SELECT id FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2),
              queued AS (
                UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                       next_attempt_at = now(), updated_at = now()
                 WHERE id IN (SELECT id FROM target)
                   AND (locked_until IS NULL OR locked_until <= now())
                 RETURNING id)
         SELECT EXISTS (SELECT 1 FROM queued) FROM target",
    )
    .bind(id)
    .bind(endpoint_id)
    .fetch_optional(pool)
    .await
}

/// Queues a `webhook.test` delivery of `body` (event `event_id`) to endpoint `endpoint_id`, due
/// now; its id.
pub async fn enqueue_test(
    pool: &PgPool,
    endpoint_id: Uuid,
    event_id: Uuid,
    body: &[u8],
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, next_attempt_at)
         VALUES ($1, $2, $3, 'webhook.test', $4, now())",
    )
    .bind(id)
    .bind(endpoint_id)
    .bind(event_id)
    .bind(body)
    .execute(pool)
    .await?;
    Ok(id)
}

/// A delivery claimed for one attempt, with what sending it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub attempts: i32,
    pub body: Vec<u8>,
    pub url: String,
    /// The signing secret, sealed.
    pub secret: String,
    /// The previous secret while its overlap lasts, sealed.
    pub previous_secret: Option<String>,
    /// When this lease ends: a successor is leased only while the row still holds it.
    pub locked_until: DateTime<Utc>,
}

/// How many attempts may be in flight at once, over every replica.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    /// To one endpoint: a slow endpoint holds only these.
    pub per_endpoint: usize,
    /// To one user's endpoints together: many slow endpoints of one user cannot take every
    /// slot from the others.
    pub per_user: usize,
}

/// Claims up to `limit` due deliveries of enabled endpoints for `lease`, within `room` (in
/// flight = leased and not yet recorded), the longest waiting first. Claims are serialised by
/// an advisory lock, so two replicas never count the same room twice; `SKIP LOCKED` passes over
/// rows being recorded, and a row that an attempt's successor ([`delivered`]) leased after this
/// statement's snapshot fails the re-check under its row lock instead of being leased twice.
pub async fn claim(
    pool: &PgPool,
    limit: usize,
    room: Room,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:claim', 0))")
        .execute(&mut *tx)
        .await?;
    let claimed = sqlx::query_as(
        "WITH leased_now AS (
            SELECT d.endpoint_id, e.user_id FROM webhook_deliveries d
              JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.state = 'pending' AND d.locked_until > now()
         ), busy AS (
            SELECT endpoint_id, count(*) AS n FROM leased_now GROUP BY endpoint_id
         ), busy_user AS (
            SELECT user_id, count(*) AS n FROM leased_now GROUP BY user_id
         ), room AS (
            SELECT e.id, e.user_id, $2 - COALESCE(b.n, 0) AS free, $4 - COALESCE(u.n, 0) AS user_free
              FROM webhook_endpoints e
              LEFT JOIN busy b ON b.endpoint_id = e.id
              LEFT JOIN busy_user u ON u.user_id = e.user_id
             WHERE e.enabled AND COALESCE(b.n, 0) < $2 AND COALESCE(u.n, 0) < $4
         ), candidates AS (
            SELECT c.id, c.next_attempt_at, r.user_id, r.user_free FROM room r CROSS JOIN LATERAL (
                SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                 WHERE d.endpoint_id = r.id AND d.state = 'pending' AND d.next_attempt_at <= now()
                   AND (d.locked_until IS NULL OR d.locked_until <= now())
                 ORDER BY d.next_attempt_at LIMIT r.free
            ) c
         ), chosen AS (
            SELECT id, next_attempt_at FROM (
                SELECT id, next_attempt_at, user_free,
                       row_number() OVER (PARTITION BY user_id ORDER BY next_attempt_at) AS nth
                  FROM candidates) per_user
             WHERE nth <= user_free
             ORDER BY next_attempt_at LIMIT $1
         ), leased AS (
            UPDATE webhook_deliveries d SET locked_until = now() + make_interval(secs => $3)
             WHERE d.id IN (SELECT id FROM webhook_deliveries
                             WHERE id IN (SELECT id FROM chosen) AND state = 'pending'
                               AND (locked_until IS NULL OR locked_until <= now())
                               FOR UPDATE SKIP LOCKED)
             RETURNING d.id, d.endpoint_id, d.attempts, d.body, d.locked_until
         )
         SELECT l.id, l.endpoint_id, l.attempts, l.body, e.url, e.secret,
                CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret,
                l.locked_until
           FROM leased l JOIN webhook_endpoints e ON e.id = l.endpoint_id",
    )
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .bind(i64::try_from(room.per_endpoint).unwrap_or(i64::MAX))
    .bind(lease.as_secs_f64())
    .bind(i64::try_from(room.per_user).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Records a delivered attempt of `delivery` (its log line, the delivery, the endpoint's failure
/// clock stopped) in one statement and, given a `lease`, leases in the same statement the next
/// due delivery of the same endpoint, if it is still enabled and `delivery` still held its own
/// lease (not cancelled, not lapsed and claimed again): the endpoint's and its owner's leased
/// counts stay as they were, so this needs no claim and no advisory lock.
pub async fn delivered(
    pool: &PgPool,
    delivery: &Claimed,
    log: &AttemptLog,
    lease: Option<Duration>,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "WITH held AS (
            SELECT 1 FROM webhook_deliveries
             WHERE id = $1 AND state = 'pending' AND locked_until = $8
         ), logged AS (
            INSERT INTO webhook_attempts (delivery_id, status, error, latency_ms, response_excerpt)
            VALUES ($1, $3, $4, $5, $6)
         ), finished AS (
            UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
                   last_status = COALESCE($3, last_status), next_attempt_at = NULL,
                   locked_until = NULL, updated_at = now()
             WHERE id = $1
         ), answered AS (
            UPDATE webhook_endpoints SET failing_since = NULL
             WHERE id = $2 AND failing_since IS NOT NULL
         ), leased AS (
            UPDATE webhook_deliveries d SET locked_until = now() + make_interval(secs => $7)
             WHERE d.id = (SELECT n.id FROM webhook_deliveries n
                             JOIN webhook_endpoints e ON e.id = n.endpoint_id AND e.enabled
                            WHERE $7 IS NOT NULL AND EXISTS (SELECT 1 FROM held)
                              AND n.endpoint_id = $2 AND n.id <> $1
                              AND n.state = 'pending' AND n.next_attempt_at <= now()
                              AND (n.locked_until IS NULL OR n.locked_until <= now())
                            ORDER BY n.next_attempt_at LIMIT 1
                              FOR UPDATE OF n SKIP LOCKED)
             RETURNING d.id, d.endpoint_id, d.attempts, d.body, d.locked_until
         )
         SELECT l.id, l.endpoint_id, l.attempts, l.body, e.url, e.secret,
                CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret,
                l.locked_until
           FROM leased l JOIN webhook_endpoints e ON e.id = l.endpoint_id",
    )
    .bind(delivery.id)
    .bind(delivery.endpoint_id)
    .bind(log.status.map(i32::from))
    .bind(&log.error)
    .bind(log.latency_ms)
    .bind(&log.response_excerpt)
    .bind(lease.map(|lease| lease.as_secs_f64()))
    .bind(delivery.locked_until)
    .fetch_optional(pool)
    .await
}

/// One attempt as the log keeps it.
#[derive(Debug, Clone)]
pub struct AttemptLog {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
}

pub async fn log_attempt(
    tx: &mut PgConnection,
    delivery_id: Uuid,
    log: &AttemptLog,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, status, error, latency_ms, response_excerpt)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(delivery_id)
    .bind(log.status.map(i32::from))
    .bind(&log.error)
    .bind(log.latency_ms)
    .bind(&log.response_excerpt)
    .execute(tx)
    .await?;
    Ok(())
}

/// Ends an attempt of delivery `id` that did not deliver (a delivered one is recorded by
/// [`delivered`]): `retry_in` schedules the next one, otherwise it is `state` (failed). The
/// lease is released. A delivery cancelled meanwhile stays cancelled.
pub async fn finish_attempt(
    tx: &mut PgConnection,
    id: Uuid,
    status: Option<u16>,
    state: DeliveryState,
    retry_in: Option<Duration>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_deliveries SET
            state = $2, attempts = attempts + 1, last_status = COALESCE($3, last_status),
            next_attempt_at = CASE WHEN $4::float8 IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => $4) END,
            locked_until = NULL, updated_at = now()
          WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(status.map(i32::from))
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(tx)
    .await?;
    Ok(())
}

/// Endpoint `id` failed: starts its failure clock if it is not running; whether it has now run
/// for `disable_after`.
pub async fn endpoint_failed(
    tx: &mut PgConnection,
    id: Uuid,
    disable_after: Duration,
) -> Result<bool, sqlx::Error> {
    let expired: Option<bool> = sqlx::query_scalar(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, now())
          WHERE id = $1
          RETURNING failing_since <= now() - make_interval(secs => $2)",
    )
    .bind(id)
    .bind(disable_after.as_secs_f64())
    .fetch_optional(tx)
    .await?;
    Ok(expired.unwrap_or(false))
}

/// Disables endpoint `id` for `reason` and cancels its pending deliveries. Its owner and URL
/// when this disabled it, `None` when it already was (or is gone).
pub async fn disable_endpoint(
    tx: &mut PgConnection,
    id: Uuid,
    reason: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    let disabled: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
          WHERE id = $1 AND enabled RETURNING user_id, url",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if disabled.is_some() {
        cancel_pending(tx, id).await?;
    }
    Ok(disabled)
}

/// Cancels endpoint `id`'s pending deliveries (it was disabled).
pub async fn cancel_pending(tx: &mut PgConnection, id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at = NULL,
                locked_until = NULL, updated_at = now()
          WHERE endpoint_id = $1 AND state = 'pending'",
    )
    .bind(id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

/// Queues each `(user, kind, event)` for each of that user's enabled endpoints subscribed to
/// `kind`, inside the fan-out's transaction; how many deliveries were queued. Once per (event,
/// endpoint): a redelivered event queues nothing new. The body is the event's JSON without its
/// `traceparent`, stored and sent as is. The first attempt is due at once (it has no config:
/// `schedule_secs[0]`, 0 by default, is not applied).
pub async fn enqueue_events(
    tx: &mut PgConnection,
    items: &[(Uuid, Kind, &CloudEvent)],
) -> Result<u64, sqlx::Error> {
    if items.is_empty() {
        return Ok(0);
    }
    let mut users: Vec<Uuid> = items.iter().map(|(user, _, _)| *user).collect();
    users.sort_unstable();
    users.dedup();
    let endpoints: Vec<(Uuid, Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT id, user_id, event_types FROM webhook_endpoints
          WHERE user_id = ANY($1) AND enabled ORDER BY id",
    )
    .bind(&users)
    .fetch_all(&mut *tx)
    .await?;
    let (mut ids, mut to, mut event_ids, mut types, mut bodies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (user, kind, event) in items {
        let subscribed: Vec<Uuid> = endpoints
            .iter()
            .filter(|(_, owner, wants)| owner == user && wants.iter().any(|t| t == kind.as_str()))
            .map(|(id, _, _)| *id)
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        // Receivers are third parties: the platform's trace context stays inside.
        let public = CloudEvent {
            traceparent: None,
            ..(*event).clone()
        };
        let body = serde_json::to_vec(&public).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        for endpoint in subscribed {
            ids.push(Uuid::now_v7());
            to.push(endpoint);
            event_ids.push(event.id);
            types.push(kind.as_str());
            bodies.push(body.clone());
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, next_attempt_at)
         SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.body, now()
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bytea[])
                AS d (id, endpoint_id, event_id, event_type, body)
         ON CONFLICT (endpoint_id, event_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&to)
    .bind(&event_ids)
    .bind(&types)
    .bind(&bodies)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}
