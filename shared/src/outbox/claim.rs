//! A relay round's claim: the due rows, locked, read into the messages they carry.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::message::{GroupedRaw, GROUP_KEY};

/// A message to publish: a row of its own, or one of a group row's messages.
pub struct Message {
    /// The row it is stored in.
    pub row: Uuid,
    /// Whether that row is a group.
    pub grouped: bool,
    /// The event's id (the AMQP message-id).
    pub id: Uuid,
    pub exchange: Option<String>,
    pub routing_key: String,
    pub payload: String,
    pub priority: Option<u8>,
}

/// What a round claimed.
#[derive(Default)]
pub struct Claim {
    /// In the order they fell due.
    pub messages: Vec<Message>,
    /// The group rows the messages came from.
    pub groups: Vec<Uuid>,
    /// Group rows whose payload is not a list of messages (never written so): settled with
    /// their error instead of blocking every later round.
    pub unreadable: Vec<Uuid>,
}

/// Locks due rows, oldest due first, until they carry `batch` messages or more (at least one
/// row, whatever it carries): rows locked past that are left for the next round.
pub async fn claim(tx: &mut PgConnection, batch: u32) -> Result<Claim, sqlx::Error> {
    let rows = sqlx::query(
        "WITH claimed AS (
             SELECT id, seq, available_at, exchange, routing_key, payload, priority, messages
               FROM outbox
              WHERE published_at IS NULL AND available_at <= statement_timestamp()
              ORDER BY available_at, seq
              LIMIT $1
                FOR UPDATE SKIP LOCKED)
         SELECT id, exchange, routing_key, payload::text AS payload, priority
           FROM (SELECT *, sum(messages) OVER (ORDER BY available_at, seq) AS upto
                   FROM claimed) c
          WHERE upto - messages < $1
          ORDER BY available_at, seq",
    )
    .bind(i64::from(batch))
    .fetch_all(tx)
    .await?;
    let mut claim = Claim::default();
    for row in rows {
        let id: Uuid = row.get("id");
        let routing_key: String = row.get("routing_key");
        let payload: String = row.get("payload");
        if routing_key != GROUP_KEY {
            claim.messages.push(Message {
                row: id,
                grouped: false,
                id,
                exchange: row.get("exchange"),
                routing_key,
                payload,
                priority: row
                    .get::<Option<i16>, _>("priority")
                    .and_then(|p| u8::try_from(p).ok()),
            });
            continue;
        }
        match serde_json::from_str::<Vec<GroupedRaw>>(&payload) {
            Ok(grouped) => {
                claim.groups.push(id);
                claim.messages.extend(grouped.into_iter().map(|m| Message {
                    row: id,
                    grouped: true,
                    id: m.id,
                    exchange: None,
                    routing_key: m.routing_key,
                    payload: m.event.get().to_owned(),
                    priority: m.priority,
                }));
            }
            Err(err) => {
                tracing::error!(%id, error = %err, "an outbox group row cannot be read; settled unpublished");
                claim.unreadable.push(id);
            }
        }
    }
    Ok(claim)
}
