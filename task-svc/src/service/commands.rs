//! Who may create `command` jobs: admins anywhere, members only in a pool an admin granted
//! (`POST /api/v1/admin/pools/{pool}/commands/grant`, taken back with `/revoke`). The worker's
//! operator fixes what each command runs ([`shared::commands`]); this decides who may ask.

use shared::identity::Identity;

use crate::{
    domain::{
        job::ParsedJob,
        pool::{checked, CommandGrant},
    },
    error::TaskError,
    store, AppState,
};

/// The `command` kind's name.
const KIND: &str = "command";

/// Grants (or takes back) members' use of `command` jobs in `pool`, for an admin.
pub async fn set(
    state: &AppState,
    identity: &Identity,
    pool: String,
    grant: bool,
) -> Result<CommandGrant, TaskError> {
    checked(&pool)?;
    let granted_at = match grant {
        true => Some(store::pools::grant_commands(&state.pool, &pool, identity.user_id).await?),
        false => {
            store::pools::revoke_commands(&state.pool, &pool).await?;
            None
        }
    };
    tracing::info!(%pool, admin = %identity.user_id, granted = grant, "command grant changed");
    Ok(CommandGrant {
        pool,
        granted: grant,
        granted_at,
    })
}

/// A `command` job is the caller's to create: 403 for a member in a pool without a grant.
pub async fn check(
    db: &sqlx::PgPool,
    identity: &Identity,
    job: &ParsedJob,
) -> Result<(), TaskError> {
    if job.kind != KIND || identity.is_admin() {
        return Ok(());
    }
    if store::pools::commands_granted(db, &job.pool).await? {
        return Ok(());
    }
    Err(TaskError::Forbidden(format!(
        "members create `command` jobs only in a pool an admin granted them (POST /api/v1/admin/pools/{}/commands/grant)",
        job.pool
    )))
}
