//! The read model of users, fed by user events: names for the text, addresses for the mail
//! (only verified ones are mailed).

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub email_verified: bool,
}

pub async fn upsert_created(
    tx: &mut PgConnection,
    id: Uuid,
    email: &str,
    display_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET email = $2, display_name = $3, updated_at = now()",
    )
    .bind(id)
    .bind(email)
    .bind(display_name)
    .execute(tx)
    .await?;
    Ok(())
}

/// A user a verification mail is for, known before its `user.created` is (it may come later,
/// through another replica or a retry): its address, so the mail is not skipped as for nobody.
pub async fn ensure(tx: &mut PgConnection, id: Uuid, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, '') ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(email)
    .execute(tx)
    .await?;
    Ok(())
}

/// A new address (its verification comes with the same event).
pub async fn set_email(tx: &mut PgConnection, id: Uuid, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(email)
        .execute(tx)
        .await?;
    Ok(())
}

/// A profile change; a user this read model never saw created stays unknown (no address).
pub async fn update(
    tx: &mut PgConnection,
    id: Uuid,
    display_name: &str,
    active: bool,
    email_verified: Option<bool>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET display_name = $2, active = $3,
                email_verified = COALESCE($4, email_verified), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(display_name)
    .bind(active)
    .bind(email_verified)
    .execute(tx)
    .await?;
    Ok(())
}

/// Forgets a deleted user: their address, choices, in-app notifications and webhook endpoints
/// (with their deliveries); mail and texts not yet sent are skipped and their content cleared.
pub async fn delete(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM users WHERE id = $1",
        "DELETE FROM preferences WHERE user_id = $1",
        "DELETE FROM contacts WHERE user_id = $1",
        "DELETE FROM notifications WHERE user_id = $1",
        "DELETE FROM webhook_endpoints WHERE user_id = $1",
        "UPDATE messages SET state = 'skipped', content = '{}'::jsonb, locked_until = NULL
          WHERE user_id = $1 AND state IN ('queued', 'held', 'failed', 'sending')",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    Ok(())
}

/// The users among `ids` that this read model knows.
pub async fn many(tx: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, display_name, active, email_verified FROM users WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(tx)
    .await
}
