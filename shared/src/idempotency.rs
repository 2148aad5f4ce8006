//! The idempotent-consumer helper: a consumer records `(consumer, event_id)` in
//! `processed_events` in the same transaction as its effect, so a redelivered event is
//! recognised and skipped.

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
