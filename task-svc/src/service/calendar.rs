//! Calendar feeds: a person makes one (a new one replaces the old, whose address stops
//! working), and anyone holding its address reads it without a token: the person's dated tasks
//! as iCalendar to-dos. A deactivated or deleted person's feed answers 404.

use chrono::Utc;
use shared::identity::Identity;

use crate::{
    domain::calendar::{hash, new_secret, render, secret_of},
    error::TaskError,
    store, AppState,
};

/// The platform's public address (feeds are fetched from it, and link back to it).
fn site(state: &AppState) -> &str {
    state.config.notifications.public_url.trim_end_matches('/')
}

/// A new feed of `identity`'s dated tasks: its address.
pub async fn create_feed(state: &AppState, identity: &Identity) -> Result<String, TaskError> {
    let secret = new_secret();
    store::calendar::replace(&state.pool, identity.user_id, &hash(&secret)).await?;
    Ok(format!("{}/api/v1/calendar/{secret}.ics", site(state)))
}

/// The feed named `file` (`<secret>.ics`) as iCalendar text; 404 for any other name.
pub async fn feed(state: &AppState, file: &str) -> Result<String, TaskError> {
    let missing = || TaskError::NotFound("calendar feed");
    let secret = secret_of(file).ok_or_else(missing)?;
    let user = store::calendar::owner(&state.pool, &hash(secret))
        .await?
        .ok_or_else(missing)?;
    let tasks = store::calendar::dated_tasks(&state.pool, user).await?;
    Ok(render(&tasks, Utc::now(), site(state)))
}
