//! The user resource: `GET/PATCH /api/v1/users/me`, `POST /api/v1/users/me/password`, and the
//! admin routes `GET /api/v1/users`, `GET/PATCH/DELETE /api/v1/users/{id}`.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    events::{CloudEvent, UserDeleted, UserUpdated},
    identity::Identity,
    outbox,
    problem::{JsonBody, ProblemBody},
    ApiError,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::parse_display_name,
    password,
    sessions::{end_sessions, Ending},
    AppState, SERVICE,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(me).patch(update_me))
        .route("/api/v1/users/me/password", post(change_password))
        .route("/api/v1/users", get(list))
        .route(
            "/api/v1/users/{id}",
            get(read).patch(admin_update).delete(delete),
        )
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub active: bool,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, email, display_name, role, active, email_verified, created_at";

async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The caller's profile", body = User),
        (status = 401, description = "Not authenticated", body = ProblemBody)))]
pub async fn me(State(state): State<AppState>, identity: Identity) -> Result<Json<User>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    find(&mut conn, identity.user_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

/// What a user may change about themselves: only their display name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, description = "Updated profile", body = User),
        (status = 400, description = "Malformed body or a field that cannot be set", body = ProblemBody),
        (status = 422, description = "Invalid display name", body = ProblemBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<UpdateMe>,
) -> Result<Json<User>, ApiError> {
    let change = Change {
        display_name: request
            .display_name
            .as_deref()
            .map(parse_display_name)
            .transpose()?,
        ..Change::default()
    };
    apply(&state, identity.user_id, change).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password and ends every other session.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "users", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204, description = "Changed; every other session ended"),
        (status = 403, description = "Wrong current password", body = ProblemBody),
        (status = 422, description = "Weak new password", body = ProblemBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let (email, stored): (String, String) =
        sqlx::query_as("SELECT email, password_hash FROM users WHERE id = $1")
            .bind(identity.user_id)
            .fetch_optional(&state.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
    if !password::verify(request.current_password, stored).await?.ok {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "current_password is wrong",
        ));
    }
    password::check_policy(&request.new_password, &email)?;
    let hash = password::hash(request.new_password).await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(identity.user_id)
        .bind(hash)
        .execute(&state.pool)
        .await?;
    end_sessions(
        &state,
        identity.user_id,
        Ending::AllBut(identity.session_id),
        "password changed",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub offset: u32,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserList {
    pub items: Vec<User>,
    pub offset: u32,
    pub limit: u32,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "admin", security(("bearer" = [])),
    params(("offset" = Option<u32>, Query, description = "Rows to skip"), ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, description = "Users", body = UserList),
        (status = 403, description = "Not an admin", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UserList>, ApiError> {
    identity.require_admin()?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let items = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users ORDER BY created_at, id OFFSET $1 LIMIT $2"
    ))
    .bind(i64::from(query.offset))
    .bind(i64::from(limit))
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(UserList {
        items,
        offset: query.offset,
        limit,
    }))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("user"))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such user", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    identity.require_admin()?;
    let mut conn = state.pool.acquire().await?;
    find(&mut conn, parse_id(&id)?)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Worker,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Worker => "worker",
        }
    }
}

/// What an admin may change about a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUpdate {
    pub role: Option<Role>,
    pub active: Option<bool>,
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])), request_body = AdminUpdate,
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 200, description = "Updated; deactivation or a role change signs the user out", body = User),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such user", body = ProblemBody),
        (status = 409, description = "An admin's own role or state", body = ProblemBody),
        (status = 422, description = "Invalid display name", body = ProblemBody)))]
pub async fn admin_update(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<AdminUpdate>,
) -> Result<Json<User>, ApiError> {
    identity.require_admin()?;
    let id = parse_id(&id)?;
    if id == identity.user_id && (request.role.is_some() || request.active == Some(false)) {
        return Err(ApiError::conflict(
            "own_account",
            "an admin cannot change their own role or deactivate themselves",
        ));
    }
    let change = Change {
        display_name: request
            .display_name
            .as_deref()
            .map(parse_display_name)
            .transpose()?,
        role: request.role.map(|r| r.as_str().to_string()),
        active: request.active,
    };
    // A deactivated user is signed out at once; so is one whose role changed, because their
    // access tokens carry the old role.
    let sign_out = request.active == Some(false) || request.role.is_some();
    let user = apply(&state, id, change).await?;
    if sign_out {
        end_sessions(
            &state,
            id,
            Ending::AllBut(None),
            "deactivated or role changed",
        )
        .await?;
    }
    Ok(Json(user))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses((status = 204, description = "Deleted; sessions ended"),
        (status = 403, description = "Not an admin", body = ProblemBody),
        (status = 404, description = "No such user", body = ProblemBody),
        (status = 409, description = "An admin's own account", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    identity.require_admin()?;
    let id = parse_id(&id)?;
    if id == identity.user_id {
        return Err(ApiError::conflict(
            "own_account",
            "an admin cannot delete their own account",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let sessions = crate::sessions::live_sessions(&mut tx, id, None).await?;
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found("user"));
    }
    outbox::enqueue(
        &mut tx,
        CloudEvent::new(SERVICE, UserDeleted { user_id: id }),
    )
    .await?;
    tx.commit().await?;
    crate::sessions::unmirror(&state, &sessions).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A partial update of a user.
#[derive(Debug, Default)]
struct Change {
    display_name: Option<String>,
    role: Option<String>,
    active: Option<bool>,
}

/// Applies `change` and publishes `user.updated` naming the fields that changed.
async fn apply(state: &AppState, id: Uuid, change: Change) -> Result<User, ApiError> {
    let mut tx = state.pool.begin().await?;
    let before = sqlx::query_as::<_, User>(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    let user: User = sqlx::query_as(&format!(
        "UPDATE users SET display_name = COALESCE($2, display_name), role = COALESCE($3, role),
                active = COALESCE($4, active), updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&change.display_name)
    .bind(&change.role)
    .bind(change.active)
    .fetch_one(&mut *tx)
    .await?;
    let mut changed = Vec::new();
    if user.display_name != before.display_name {
        changed.push("display_name".to_string());
    }
    if user.role != before.role {
        changed.push("role".to_string());
    }
    if user.active != before.active {
        changed.push("active".to_string());
    }
    if !changed.is_empty() {
        let event = UserUpdated {
            user_id: user.id,
            display_name: user.display_name.clone(),
            role: user.role.clone(),
            active: user.active,
            changed,
        };
        outbox::enqueue(&mut tx, CloudEvent::new(SERVICE, event)).await?;
    }
    tx.commit().await?;
    Ok(user)
}
