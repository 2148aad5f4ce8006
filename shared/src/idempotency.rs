//! The idempotent-consumer helper: a consumer records `(consumer, event_id)` in
//! `processed_events` in the same transaction as its effect, so a redelivered event is
//! recognised and skipped.

use std::collections::HashSet;

use sqlx::PgConnection;
use uuid::Uuid;

/// Records that `consumer` handles `event_id` inside the caller's transaction. Returns `false`
/// when it was handled before: the caller should commit nothing else and ack.
///
/// A concurrent duplicate blocks on the primary key until the first transaction ends, so two
/// deliveries of one event can never both see `true`.
pub async fn first_time(
    tx: &mut PgConnection,
    consumer: &str,
    event_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// [`first_time`] for many events in one statement: the ids among `event_ids` that `consumer`
/// handles for the first time (an id given twice is in it once).
pub async fn first_times(
    tx: &mut PgConnection,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    // In one order, so two transactions recording the same events cannot wait on each other.
    let mut event_ids = event_ids.to_vec();
    event_ids.sort_unstable();
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO processed_events (consumer, event_id)
         SELECT $1, e FROM unnest($2::uuid[]) AS e
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(&event_ids)
    .fetch_all(tx)
    .await?;
    Ok(fresh.into_iter().collect())
}
