//! Outgoing mail and SMS: one row per (event, recipient, kind, channel), whose id is derived
//! from those, so every replica and every redelivery agrees on it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{Channel, Kind};

/// What a message's templates need, kept with it so that sending needs nothing else.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Content {
    pub to_name: String,
    /// The address (email) or number (SMS) it goes to.
    pub to: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub channel: String,
    pub user_id: Uuid,
    pub kind: String,
    pub event_id: Uuid,
    #[sqlx(json)]
    pub content: Content,
    pub state: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// The id of the message about `event_id` for `user_id` of `kind` on `channel`.
pub fn message_id(event_id: Uuid, user_id: Uuid, kind: Kind, channel: Channel) -> Uuid {
    let name = format!("{event_id}/{user_id}/{kind}/{}", channel.as_str());
    Uuid::new_v5(&event_id, name.as_bytes())
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub channel: Channel,
    pub user_id: Uuid,
    pub kind: Kind,
    pub event_id: Uuid,
    pub content: Content,
}

/// Writes queued messages, each unless it exists; the ids of the new ones.
pub async fn insert_many(
    tx: &mut PgConnection,
    rows: &[NewMessage],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let contents = rows
        .iter()
        .map(|r| serde_json::to_value(&r.content))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar(
        "INSERT INTO messages (id, channel, user_id, kind, event_id, content)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::uuid[],
                              $6::jsonb[])
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.channel.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(contents)
    .fetch_all(tx)
    .await
}

/// Why a message cannot be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: send it, then [`settle`] or [`release`] it.
    Claimed,
    /// Sent, held or skipped: nothing to do.
    Settled,
    /// Being sent by someone else under a claim that has not lapsed: a duplicate command, or the
    /// redelivered command of a sender that died mid-send. The caller waits until that claim is
    /// settled or lapses, then claims again (acking now would lose the mail of a dead sender).
    Busy,
    /// Its person has had `cap` messages on this channel in the last hour: it is now held.
    Held,
    /// Its person is gone or deactivated: it is now skipped, its content cleared.
    Skipped,
}

const COLUMNS: &str = "id, channel, user_id, kind, event_id, content, state, attempts, created_at";

/// One message to claim: its id, its person's hourly cap on its channel and how long the claim
/// lasts.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    pub id: Uuid,
    pub cap: i64,
    pub lease: std::time::Duration,
}

/// Claims message `id` for sending for `lease`: [`claim_many`] of one.
pub async fn claim(
    pool: &PgPool,
    id: Uuid,
    cap: i64,
    lease: std::time::Duration,
) -> Result<(Claim, Option<Message>), sqlx::Error> {
    let request = ClaimRequest { id, cap, lease };
    Ok(claim_many(pool, &[request])
        .await?
        .pop()
        .expect("one answer per request"))
}

/// Claims messages for sending, in one transaction, under a lock on each of their people (taken
/// in one order, so two batches never wait on each other in a circle), counting what each
/// person got on each channel in the last hour against the cap (what is being sent counts too,
/// so concurrent senders cannot pass it; earlier requests of the batch come first). A `failed`
/// one can be claimed again: its command only comes back when an operator moves it out of the
/// dead-letter queue. The answers are in the order of `requests`; a message named twice is
/// `Busy` the second time if the first claimed it.
pub async fn claim_many(
    pool: &PgPool,
    requests: &[ClaimRequest],
) -> Result<Vec<(Claim, Option<Message>)>, sqlx::Error> {
    let ids: Vec<Uuid> = requests.iter().map(|r| r.id).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k)
           FROM (SELECT DISTINCT hashtextextended(user_id::text, 7) AS k
                   FROM messages WHERE id = ANY($1) ORDER BY k) AS keys",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    // Read under the locks (another sender may have claimed or settled them meanwhile): each
    // message, whether it can be claimed, its person's state and their last hour's count.
    #[derive(sqlx::FromRow)]
    struct Found {
        #[sqlx(flatten)]
        message: Message,
        open: bool,
        busy: bool,
        active: bool,
        recent: i64,
    }
    let found: Vec<Found> = sqlx::query_as(&format!(
        "WITH m AS (
            SELECT {COLUMNS},
                   state = ANY('{{queued,failed}}')
                       OR (state = 'sending' AND locked_until < now()) AS open,
                   state = 'sending' AND locked_until >= now() AS busy
              FROM messages WHERE id = ANY($1)
         ), recent AS (
            SELECT user_id, channel, count(*) AS n FROM messages
             WHERE user_id IN (SELECT user_id FROM m)
               AND ((state = 'sent' AND sent_at > now() - interval '1 hour')
                    OR (state = 'sending' AND locked_until >= now()))
             GROUP BY user_id, channel
         )
         SELECT m.*, coalesce(u.active, false) AS active, coalesce(recent.n, 0) AS recent
           FROM m LEFT JOIN users u ON u.id = m.user_id
                  LEFT JOIN recent ON recent.user_id = m.user_id AND recent.channel = m.channel"
    ))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut recent: HashMap<(Uuid, String), i64> = found
        .iter()
        .map(|f| ((f.message.user_id, f.message.channel.clone()), f.recent))
        .collect();
    let active: HashMap<Uuid, bool> = found
        .iter()
        .map(|f| (f.message.user_id, f.active))
        .collect();
    let open: HashMap<Uuid, (bool, bool)> = found
        .iter()
        .map(|f| (f.message.id, (f.open, f.busy)))
        .collect();
    let found: HashMap<Uuid, Message> = found
        .into_iter()
        .map(|f| (f.message.id, f.message))
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    let mut decided: HashMap<Uuid, Claim> = HashMap::new();
    let (mut changed, mut states, mut leases) = (Vec::new(), Vec::new(), Vec::new());
    for request in requests {
        let Some(message) = found.get(&request.id) else {
            answers.push((Claim::Settled, None));
            continue;
        };
        let claim = match (decided.get(&request.id), open.get(&request.id)) {
            (Some(Claim::Claimed), _) => Claim::Busy,
            (Some(_), _) => Claim::Settled,
            (None, Some((true, _))) => {
                let (claim, state) = if active.get(&message.user_id) != Some(&true) {
                    (Claim::Skipped, "skipped")
                } else {
                    let count = recent
                        .entry((message.user_id, message.channel.clone()))
                        .or_insert(0);
                    if *count >= request.cap {
                        // Mail over the cap waits for a digest; a text over it is not sent.
                        let over = if message.channel == "sms" {
                            "skipped"
                        } else {
                            "held"
                        };
                        (Claim::Held, over)
                    } else {
                        *count += 1;
                        (Claim::Claimed, "sending")
                    }
                };
                changed.push(request.id);
                states.push(state);
                leases.push(request.lease.as_secs_f64());
                decided.insert(request.id, claim);
                claim
            }
            (None, Some((false, true))) => Claim::Busy,
            (None, _) => Claim::Settled,
        };
        answers.push((claim, Some(message.clone())));
    }
    if !changed.is_empty() {
        // Only while still claimable: settling and handing back take no lock on the person, so a
        // sender whose claim lapsed may have settled the message since it was read.
        let taken: HashSet<Uuid> = sqlx::query_scalar(
            "UPDATE messages m SET state = c.state,
                    locked_until = CASE WHEN c.state = 'sending'
                                        THEN now() + make_interval(secs => c.lease) END,
                    content = CASE WHEN c.state = 'skipped' THEN '{}'::jsonb ELSE m.content END
               FROM unnest($1::uuid[], $2::text[], $3::float8[]) AS c(id, state, lease)
              WHERE m.id = c.id
                AND (m.state IN ('queued', 'failed')
                     OR (m.state = 'sending' AND m.locked_until < now()))
             RETURNING m.id",
        )
        .bind(&changed)
        .bind(&states)
        .bind(&leases)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        // A second request for one message is never answered with a change of its own.
        for (request, answer) in requests.iter().zip(answers.iter_mut()) {
            let changed_here = matches!(answer.0, Claim::Claimed | Claim::Held | Claim::Skipped);
            if changed_here && !taken.contains(&request.id) {
                answer.0 = Claim::Settled;
            }
        }
    }
    // Ended now, not when the connection is next used: until then it holds the locks.
    tx.commit().await?;
    Ok(answers)
}

/// How sending a claimed message ended: `state` is `sent`, `failed` or `skipped`.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: Uuid,
    pub state: &'static str,
    pub error: Option<String>,
}

/// Records how sending a claimed message ended: [`settle_many`] of one.
pub async fn settle(pool: &PgPool, outcome: Outcome) -> Result<(), sqlx::Error> {
    settle_many(pool, std::slice::from_ref(&outcome)).await
}

/// Records how sending claimed messages ended, in one statement (only while still claimed).
pub async fn settle_many(pool: &PgPool, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages m SET state = o.state, last_error = o.error, attempts = attempts + 1,
                locked_until = NULL,
                sent_at = CASE WHEN o.state = 'sent' THEN now() ELSE m.sent_at END
           FROM unnest($1::uuid[], $2::text[], $3::text[]) AS o(id, state, error)
          WHERE m.id = o.id AND m.state = 'sending'",
    )
    .bind(outcomes.iter().map(|o| o.id).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.state).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.error.clone()).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands a claimed message back unsent (its server is away, or it will be retried), counting
/// the attempt when `error` is given.
pub async fn release(pool: &PgPool, id: Uuid, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = 'queued', locked_until = NULL,
                attempts = attempts + CASE WHEN $2::text IS NULL THEN 0 ELSE 1 END,
                last_error = COALESCE($2, last_error)
          WHERE id = $1 AND state = 'sending'",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// People with held mail who have room in their hourly cap, counting the mail being sent as a
/// claim does (else a digest could leave beside the sends that filled the hour).
pub async fn digest_due(pool: &PgPool, cap: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT h.user_id FROM messages h
          WHERE h.state = 'held' AND h.channel = 'email'
            AND EXISTS (SELECT 1 FROM users u WHERE u.id = h.user_id AND u.active)
            AND (SELECT count(*) FROM messages s
                  WHERE s.user_id = h.user_id AND s.channel = 'email'
                    AND ((s.state = 'sent' AND s.sent_at > now() - interval '1 hour')
                         OR (s.state = 'sending' AND s.locked_until >= now()))) < $1
          LIMIT 100",
    )
    .bind(cap)
    .fetch_all(pool)
    .await
}

/// Locks `user_id`'s held mails (oldest first, at most 100) for a digest; another replica
/// skips them.
pub async fn lock_held(tx: &mut PgConnection, user_id: Uuid) -> Result<Vec<Message>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, channel, user_id, kind, event_id, content, state, attempts, created_at
           FROM messages WHERE user_id = $1 AND state = 'held' AND channel = 'email'
          ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .bind(user_id)
    .fetch_all(tx)
    .await
}

/// Gives up `ids` (held mail whose digest the server refused for good).
pub async fn fail_held(
    tx: &mut PgConnection,
    ids: &[Uuid],
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = 'failed', last_error = $2 WHERE id = ANY($1) AND state = 'held'",
    )
    .bind(ids)
    .bind(error)
    .execute(tx)
    .await?;
    Ok(())
}

/// Records that `digest_id` carried `ids`, and counts the digest as one sent mail.
pub async fn digested(
    tx: &mut PgConnection,
    ids: &[Uuid],
    digest_id: Uuid,
    user_id: Uuid,
    content: &Content,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET state = 'digested', digest_id = $2 WHERE id = ANY($1)")
        .bind(ids)
        .bind(digest_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO messages (id, channel, user_id, kind, event_id, content, state, attempts, sent_at)
         VALUES ($1, 'email', $2, 'digest', $1, $3, 'sent', 1, now()) ON CONFLICT (id) DO NOTHING",
    )
    .bind(digest_id)
    .bind(user_id)
    .bind(sqlx::types::Json(content))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
