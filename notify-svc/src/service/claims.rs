//! Claims on outgoing messages, batched. The mail consumer handles up to its prefetch of
//! commands at once, and a claim locks its person to count the hourly cap exactly; claimed one
//! by one, a bulk of mail to one person went through that lock (and a commit) one mail at a
//! time. Claims that wait together now share one transaction: one lock per person, one count.

use std::time::Duration;

use shared::batch::Batcher;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::messages::{self, Claim, ClaimRequest, Message};

/// Claim transactions at once (a second one builds while the first commits).
const LANES: usize = 2;
/// Most claims in one transaction.
const MOST: usize = 256;

type Answer = Result<(Claim, Option<Message>), sqlx::Error>;

/// The handle senders claim through (cheap to clone).
#[derive(Clone)]
pub struct Claims(Batcher<ClaimRequest, Answer>);

impl Claims {
    /// Starts the lanes on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        Self(Batcher::start(LANES, MOST, move |batch| {
            let pool = pool.clone();
            async move { answer(&pool, batch).await }
        }))
    }

    /// Claims message `id` for `lease`, its person's cap on its channel being `cap` (see
    /// [`messages::claim_many`]), in the next batch.
    pub async fn claim(&self, id: Uuid, cap: i64, lease: Duration) -> Answer {
        let request = ClaimRequest { id, cap, lease };
        self.0
            .call(request)
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

async fn answer(pool: &PgPool, batch: Vec<ClaimRequest>) -> Vec<Answer> {
    match messages::claim_many(pool, &batch).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(err) if batch.len() == 1 => vec![Err(err)],
        // Each alone: each gets its own error (they are not `Clone`), and a request that
        // cannot be claimed does not fail the others.
        Err(_) => {
            let mut answers = Vec::with_capacity(batch.len());
            for request in batch {
                answers.push(messages::claim(pool, request.id, request.cap, request.lease).await);
            }
            answers
        }
    }
}
