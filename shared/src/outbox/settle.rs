//! What a relay round writes back before it commits.

use sqlx::PgConnection;
use uuid::Uuid;

use super::claim::Message;

/// The end of a round's rows.
#[derive(Default)]
pub struct Settle {
    /// Rows of their own the broker took.
    pub published: Vec<Uuid>,
    /// Rows of their own no queue was bound for: marked with `last_error`, not retried.
    pub unroutable: Vec<Uuid>,
    /// Messages the broker refused, with its error: retried with backoff.
    pub failed: Vec<(Message, String)>,
    /// Group rows: settled whatever became of their messages (one the broker refused gets a
    /// row of its own, retried like any other).
    pub groups: Vec<Uuid>,
    /// Group rows that could not be read.
    pub unreadable: Vec<Uuid>,
}

impl Settle {
    pub async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        let mut retried = Vec::new();
        for (message, error) in &self.failed {
            if message.grouped {
                retried.push((message, error));
                continue;
            }
            sqlx::query(
                "UPDATE outbox
                    SET attempts = attempts + 1, last_error = $2,
                        available_at = now() + make_interval(secs => least(300, 2 ^ least(attempts, 10)))
                  WHERE id = $1",
            )
            .bind(message.row)
            .bind(error)
            .execute(&mut *tx)
            .await?;
        }
        if !retried.is_empty() {
            // Out of its group, as if it had been written alone and failed once.
            sqlx::query(
                "INSERT INTO outbox (id, routing_key, payload, priority, attempts, last_error,
                                     available_at)
                 SELECT id, key, payload::jsonb, priority, 1, error, now() + interval '1 second'
                   FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int2[], $5::text[])
                     AS f(id, key, payload, priority, error)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(retried.iter().map(|(m, _)| m.id).collect::<Vec<_>>())
            .bind(
                retried
                    .iter()
                    .map(|(m, _)| m.routing_key.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                retried
                    .iter()
                    .map(|(m, _)| m.payload.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                retried
                    .iter()
                    .map(|(m, _)| m.priority.map(i16::from))
                    .collect::<Vec<_>>(),
            )
            .bind(retried.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        let settled: Vec<Uuid> = self
            .published
            .iter()
            .chain(&self.unroutable)
            .chain(&self.groups)
            .chain(&self.unreadable)
            .copied()
            .collect();
        if !settled.is_empty() {
            sqlx::query(
                "UPDATE outbox
                    SET published_at = now(),
                        last_error = CASE WHEN id = ANY($2) THEN 'unroutable: no queue bound'
                                          WHEN id = ANY($3) THEN 'unreadable group'
                                          ELSE last_error END
                  WHERE id = ANY($1)",
            )
            .bind(&settled)
            .bind(&self.unroutable)
            .bind(&self.unreadable)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}
