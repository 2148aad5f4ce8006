//! Claims on outgoing messages and their outcomes, batched. The mail consumer handles up to its
//! prefetch of commands at once, and a claim locks its person to count the hourly cap exactly;
//! claimed one by one, a bulk of mail to one person went through that lock (and a commit) one
//! mail at a time. Claims that wait together now share one transaction (one lock per person,
//! one count), and so do the outcomes recorded together (one statement, one commit).

use std::time::Duration;

use shared::batch::Batcher;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::messages::{self, Claim, ClaimRequest, Message, Outcome};

/// Claim transactions at once (a second one builds while the first commits).
const LANES: usize = 2;
/// Most claims in one transaction.
const MOST: usize = 256;

type Answer = Result<(Claim, Option<Message>), sqlx::Error>;

/// The handle senders claim and settle through (cheap to clone).
#[derive(Clone)]
pub struct Claims {
    claims: Batcher<ClaimRequest, Answer>,
    outcomes: Batcher<Outcome, Result<(), sqlx::Error>>,
}

impl Claims {
    /// Starts the lanes on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let claims = Batcher::start(LANES, MOST, {
            let pool = pool.clone();
            move |batch: Vec<ClaimRequest>| {
                let pool = pool.clone();
                async move {
                    let together = messages::claim_many(&pool, &batch).await;
                    each(together, batch, |request| {
                        messages::claim(&pool, request.id, request.cap, request.lease)
                    })
                    .await
                }
            }
        });
        let outcomes = Batcher::start(LANES, MOST, move |batch: Vec<Outcome>| {
            let pool = pool.clone();
            async move {
                let together = messages::settle_many(&pool, &batch)
                    .await
                    .map(|()| batch.iter().map(|_| ()).collect());
                each(together, batch, |outcome| messages::settle(&pool, outcome)).await
            }
        });
        Self { claims, outcomes }
    }

    /// Records how sending claimed message `id` ended (`sent`, `failed` or `skipped`), with
    /// others recorded at the same moment.
    pub async fn settle(
        &self,
        id: Uuid,
        state: &'static str,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let error = error.map(str::to_string);
        self.outcomes
            .call(Outcome { id, state, error })
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }

    /// Claims message `id` for `lease`, its person's cap on its channel being `cap` (see
    /// [`messages::claim_many`]), in the next batch.
    pub async fn claim(&self, id: Uuid, cap: i64, lease: Duration) -> Answer {
        let request = ClaimRequest { id, cap, lease };
        self.claims
            .call(request)
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

/// The answers to a batch: `together`'s, or when it failed, each item's `alone`, so that each
/// gets its own error (they are not `Clone`) and one that cannot be done does not fail the
/// others. When the database is away, every item gets that answer at once: trying each alone
/// would only wait out the pool's timeout once per item, holding every sender meanwhile.
async fn each<T, R, F, Fut>(
    together: Result<Vec<R>, sqlx::Error>,
    batch: Vec<T>,
    alone: F,
) -> Vec<Result<R, sqlx::Error>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, sqlx::Error>>,
{
    match together {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(err) if shared::db::is_unavailable(&err) || batch.len() == 1 => {
            let copies = batch.len() - 1;
            let mut answers: Vec<_> = (0..copies).map(|_| Err(shared::db::echo(&err))).collect();
            answers.push(Err(err));
            answers
        }
        Err(_) => {
            let mut answers = Vec::with_capacity(batch.len());
            for item in batch {
                answers.push(alone(item).await);
            }
            answers
        }
    }
}
