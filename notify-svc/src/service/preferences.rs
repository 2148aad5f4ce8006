//! Reading and changing a person's preferences: every kind with its four channels (explicit
//! choices over the defaults) and the SMS number, verified by a texted code.

use chrono::{Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{refused_phone, valid_phone, Channel, Kind};
use crate::service::fanout;
use crate::store::preferences::{self as store, Choices};
use crate::AppState;

/// A change, as checked input: per kind, the channels to switch; the number to set (`Some("")`
/// removes it).
#[derive(Debug, Default)]
pub struct Change {
    pub switches: Vec<(Kind, Channel, bool)>,
    pub phone: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("{0} is not an E.164 number (+ and 7 to 15 digits)")]
    InvalidPhone(String),
    #[error("{0} is in a premium-rate or costly range this platform does not text")]
    RefusedPhone(String),
    #[error("SMS needs a number: set sms_number first")]
    NoPhone,
    #[error("no code is outstanding: set sms_number, or ask for a new code")]
    NoCode,
    #[error("the number is verified already")]
    AlreadyVerified,
    #[error("a code was sent less than a minute ago; try again in {0} s")]
    TooSoon(u64),
    #[error("{CODES_A_DAY} codes were texted in the last 24 hours; try again later")]
    TooManyCodes,
    #[error("this code is wrong")]
    WrongCode,
    #[error("this code has expired or was tried too often; ask for a new one")]
    CodeSpent,
}

/// How long a texted code works, how often it may be tried, and how soon another may be sent.
const CODE_TTL: Duration = Duration::minutes(10);
const CODE_TRIES: i32 = 5;
const RESEND_AFTER: Duration = Duration::seconds(60);
/// Codes a person may have texted in 24 hours (whatever the numbers): with five tries each, at
/// most 25 guesses a day at a six-digit code, and few texts to numbers nobody verified.
const CODES_A_DAY: i64 = 5;

pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Choices, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut all = store::choices(&mut conn, &[user_id], None).await?;
    Ok(all.remove(&user_id).unwrap_or_default())
}

/// Applies `change` all or nothing, and returns the result. A new number is unverified and gets
/// a code by text; texts go to it once the code comes back ([`verify_code`]).
pub async fn set(state: &AppState, user_id: Uuid, change: Change) -> Result<Choices, Error> {
    if let Some(phone) = change.phone.as_deref().filter(|p| !p.is_empty()) {
        if !valid_phone(phone) {
            return Err(Error::InvalidPhone(phone.into()));
        }
        if refused_phone(phone, &state.config.sms.refused_prefixes) {
            return Err(Error::RefusedPhone(phone.into()));
        }
    }
    let mut tx = state.pool.begin().await?;
    if let Some(phone) = &change.phone {
        let phone = Some(phone.as_str()).filter(|p| !p.is_empty());
        let before = store::lock_contact(&mut tx, user_id).await?;
        if before.as_ref().and_then(|c| c.phone.as_deref()) != phone {
            match phone {
                Some(phone) => send_code(&mut tx, user_id, before.as_ref(), phone).await?,
                None => store::set_phone(&mut tx, user_id, None, None).await?,
            }
        }
    }
    store::set(&mut tx, user_id, &change.switches).await?;
    let after = choices_of(&mut tx, user_id).await?;
    let texts = Kind::choosable().any(|k| after.enabled(k, Channel::Sms));
    if texts && after.phone.is_none() {
        return Err(Error::NoPhone);
    }
    tx.commit().await?;
    Ok(after)
}

async fn choices_of(tx: &mut PgConnection, user_id: Uuid) -> Result<Choices, sqlx::Error> {
    Ok(store::choices(tx, &[user_id], None)
        .await?
        .remove(&user_id)
        .unwrap_or_default())
}

fn code_hash(user_id: Uuid, code: &str) -> Vec<u8> {
    Sha256::new()
        .chain_update(user_id.as_bytes())
        .chain_update(code.as_bytes())
        .finalize()
        .to_vec()
}

/// Records `phone` unverified with a new six-digit code, and texts the code to it: not within a
/// minute of the last code (`before`'s), nor past [`CODES_A_DAY`].
async fn send_code(
    tx: &mut PgConnection,
    user_id: Uuid,
    before: Option<&store::Contact>,
    phone: &str,
) -> Result<(), Error> {
    if let Some(sent) = before.and_then(|c| c.code_sent_at) {
        let wait = sent + RESEND_AFTER - Utc::now();
        if wait > Duration::zero() {
            return Err(Error::TooSoon(wait.num_seconds().max(1) as u64));
        }
    }
    if store::codes_texted_today(&mut *tx, user_id).await? >= CODES_A_DAY {
        return Err(Error::TooManyCodes);
    }
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    store::set_phone(
        &mut *tx,
        user_id,
        Some(phone),
        Some(&code_hash(user_id, &code)),
    )
    .await?;
    let text = format!("Your Taskmesh code: {code}. It works for 10 minutes.");
    fanout::text_code(tx, user_id, phone, text).await?;
    Ok(())
}

/// A new code for the caller's unverified number (at most one a minute, [`CODES_A_DAY`] a day).
pub async fn resend_code(state: &AppState, user_id: Uuid) -> Result<(), Error> {
    let mut tx = state.pool.begin().await?;
    let contact = store::lock_contact(&mut tx, user_id).await?;
    let Some(phone) = contact.as_ref().and_then(|c| c.phone.clone()) else {
        return Err(Error::NoPhone);
    };
    if contact.as_ref().is_some_and(|c| c.verified) {
        return Err(Error::AlreadyVerified);
    }
    // A number kept from before a range was refused gets no code either.
    if refused_phone(&phone, &state.config.sms.refused_prefixes) {
        return Err(Error::RefusedPhone(phone));
    }
    send_code(&mut tx, user_id, contact.as_ref(), &phone).await?;
    tx.commit().await?;
    Ok(())
}

/// Verifies the caller's number with the code texted to it; the choices after.
pub async fn verify_code(state: &AppState, user_id: Uuid, code: &str) -> Result<Choices, Error> {
    let mut tx = state.pool.begin().await?;
    let contact = store::lock_contact(&mut tx, user_id).await?;
    let Some(contact) = contact.filter(|c| c.phone.is_some() && !c.verified) else {
        return Err(Error::NoCode);
    };
    let (Some(hash), Some(sent)) = (&contact.code_hash, contact.code_sent_at) else {
        return Err(Error::NoCode);
    };
    if sent + CODE_TTL < Utc::now() || contact.code_attempts >= CODE_TRIES {
        return Err(Error::CodeSpent);
    }
    if code.len() > 16 || code_hash(user_id, code.trim()) != *hash {
        store::count_attempt(&mut tx, user_id).await?;
        tx.commit().await?;
        return Err(Error::WrongCode);
    }
    store::mark_verified(&mut tx, user_id).await?;
    let after = choices_of(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(after)
}
