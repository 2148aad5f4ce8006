//! The only code that writes SQL for `webhook_endpoints` (an endpoint's own row; its
//! deliveries are in [`super::store`]).

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::model::Endpoint;

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, disabled_reason,
    failing_since, previous_secret_until, created_at, updated_at";

/// An endpoint to write.
pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: &'a [String],
    /// The signing secret, sealed (`shared::seal::AtRest`).
    pub sealed_secret: &'a str,
}

/// Serialises `user_id`'s endpoint writes until the transaction ends (the count limit).
pub async fn lock_user(tx: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || $1::text, 0))")
        .bind(user_id)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn count_endpoints(tx: &mut PgConnection, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(tx)
        .await
}

pub async fn insert_endpoint(
    tx: &mut PgConnection,
    new: &NewEndpoint<'_>,
) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (id, user_id, url, description, event_types, secret)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.url)
    .bind(new.description)
    .bind(new.event_types)
    .bind(new.sealed_secret)
    .fetch_one(tx)
    .await
}

/// `user_id`'s endpoint `id`.
pub async fn find_endpoint(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

pub async fn list_endpoints(pool: &PgPool, user_id: Uuid) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// What a PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct Changes {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Applies `changes` to `user_id`'s endpoint `id`. Enabling a disabled endpoint clears its
/// reason and its failure clock; disabling one records that its owner did it.
pub async fn update_endpoint(
    tx: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
    changes: &Changes,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET
            url = COALESCE($3, url),
            description = COALESCE($4, description),
            event_types = COALESCE($5, event_types),
            disabled_reason = CASE WHEN $6 = true AND NOT enabled THEN NULL
                                   WHEN $6 = false AND enabled THEN 'disabled by its owner'
                                   ELSE disabled_reason END,
            failing_since = CASE WHEN $6 = true AND NOT enabled THEN NULL ELSE failing_since END,
            enabled = COALESCE($6, enabled),
            updated_at = now()
          WHERE id = $1 AND user_id = $2
          RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(id)
    .bind(user_id)
    .bind(&changes.url)
    .bind(&changes.description)
    .bind(&changes.event_types)
    .bind(changes.enabled)
    .fetch_optional(tx)
    .await
}

/// Deletes `user_id`'s endpoint `id` with its deliveries; `false` when there is none.
pub async fn delete_endpoint(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes `sealed_secret` the signing secret of `user_id`'s endpoint `id`; the current one
/// keeps signing for `overlap`.
pub async fn rotate_secret(
    tx: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
    sealed_secret: &str,
    overlap: Duration,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE webhook_endpoints SET
            previous_secret = secret,
            previous_secret_until = now() + make_interval(secs => $4),
            secret = $3,
            updated_at = now()
          WHERE id = $1 AND user_id = $2
          RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(id)
    .bind(user_id)
    .bind(sealed_secret)
    .bind(overlap.as_secs_f64())
    .fetch_optional(tx)
    .await
}

/// How many endpoints are disabled because their deliveries kept failing (not those their
/// owners turned off).
pub async fn disabled_by_failures(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhook_endpoints
          WHERE NOT enabled AND disabled_reason IS DISTINCT FROM 'disabled by its owner'",
    )
    .fetch_one(pool)
    .await
}
