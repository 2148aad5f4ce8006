//! Reading and changing a person's preferences: every kind with its four channels (explicit
//! choices over the defaults) and the SMS number.

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{valid_phone, Channel, Kind};
use crate::store::preferences::{self as store, Choices};

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
    #[error("SMS needs a number: set sms_number first")]
    NoPhone,
}

pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Choices, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut all = store::choices(&mut conn, &[user_id], None).await?;
    Ok(all.remove(&user_id).unwrap_or_default())
}

/// Applies `change` all or nothing, and returns the result.
pub async fn set(pool: &PgPool, user_id: Uuid, change: Change) -> Result<Choices, Error> {
    if let Some(phone) = change.phone.as_deref().filter(|p| !p.is_empty()) {
        if !valid_phone(phone) {
            return Err(Error::InvalidPhone(phone.into()));
        }
    }
    let mut tx = pool.begin().await?;
    if let Some(phone) = &change.phone {
        let phone = Some(phone.as_str()).filter(|p| !p.is_empty());
        store::set_phone(&mut tx, user_id, phone).await?;
    }
    store::set(&mut tx, user_id, &change.switches).await?;
    let after = store::choices(&mut tx, &[user_id], None)
        .await?
        .remove(&user_id)
        .unwrap_or_default();
    let texts = Kind::ALL.iter().any(|k| after.enabled(*k, Channel::Sms));
    if texts && after.phone.is_none() {
        return Err(Error::NoPhone);
    }
    tx.commit().await?;
    Ok(after)
}
