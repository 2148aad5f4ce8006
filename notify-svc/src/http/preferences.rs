//! `GET/PUT /api/v1/notifications/preferences`: per kind, which channels (in-app, email,
//! webhook, SMS) tell the caller, and the caller's SMS number, verified with a texted code
//! (`POST /api/v1/notifications/sms-number/verify`, a new code from `…/sms-number/code`).

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use shared::{identity::Identity, problem::JsonBody, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::domain::{Channel, Kind};
use crate::service::preferences::{self as service, Change, Error};
use crate::store::preferences::Choices;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(send_code))
        .routes(routes!(verify_code))
}

/// One kind's channels.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KindChoices {
    pub kind: Kind,
    pub in_app: bool,
    pub email: bool,
    pub webhook: bool,
    pub sms: bool,
}

/// Every kind, with the caller's choices over the defaults.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preferences {
    pub preferences: Vec<KindChoices>,
    /// Where texts go (E.164), if set.
    pub sms_number: Option<String>,
    /// Whether the number is verified: texts go only to a verified number.
    pub sms_number_verified: bool,
}

/// Channels to switch for one kind; an absent channel stays as it is.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KindUpdate {
    /// A kind from `GET` (`task.assigned`, …).
    pub kind: String,
    pub in_app: Option<bool>,
    pub email: Option<bool>,
    pub webhook: Option<bool>,
    pub sms: Option<bool>,
}

/// A change: only what is given changes. `sms_number` `""` removes the number.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesUpdate {
    #[serde(default)]
    #[schema(max_items = 50)]
    pub preferences: Vec<KindUpdate>,
    #[schema(max_length = 16)]
    pub sms_number: Option<String>,
}

fn view(choices: &Choices) -> Preferences {
    Preferences {
        preferences: Kind::choosable()
            .map(|kind| KindChoices {
                kind,
                in_app: choices.enabled(kind, Channel::InApp),
                email: choices.enabled(kind, Channel::Email),
                webhook: choices.enabled(kind, Channel::Webhook),
                sms: choices.enabled(kind, Channel::Sms),
            })
            .collect(),
        sms_number: choices.phone.clone(),
        sms_number_verified: choices.phone_verified,
    }
}

#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, description = "The caller's preferences for every kind", body = Preferences)))]
pub async fn get_preferences(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Preferences>, ApiError> {
    Ok(Json(view(
        &service::get(&state.pool, identity.user_id).await?,
    )))
}

#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    request_body = PreferencesUpdate,
    responses((status = 200, description = "The preferences after the change; a new number is unverified and gets a code by text", body = Preferences),
        (status = 422, description = "Unknown kind, bad number (`invalid_phone`), a refused range (`refused_phone`), or SMS on without a number: nothing changed", body = ProblemBody),
        (status = 429, description = "A new number within a minute of the last code (`too_soon`), or past five codes in 24 hours (`too_many_codes`): nothing changed", body = ProblemBody)))]
pub async fn put_preferences(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(update): JsonBody<PreferencesUpdate>,
) -> Result<Json<Preferences>, ApiError> {
    if update.preferences.len() > 50 {
        return Err(ApiError::unprocessable(
            "too_many",
            "at most 50 kinds per change",
        ));
    }
    let mut change = Change {
        phone: update.sms_number,
        ..Change::default()
    };
    for item in &update.preferences {
        let kind = Kind::parse_choosable(&item.kind).ok_or_else(|| {
            ApiError::unprocessable("unknown_kind", format!("unknown kind {:?}", item.kind))
        })?;
        for (channel, value) in [
            (Channel::InApp, item.in_app),
            (Channel::Email, item.email),
            (Channel::Webhook, item.webhook),
            (Channel::Sms, item.sms),
        ] {
            if let Some(on) = value {
                change.switches.push((kind, channel, on));
            }
        }
    }
    let after = service::set(&state, identity.user_id, change).await?;
    Ok(Json(view(&after)))
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::Db(e) => e.into(),
            Error::InvalidPhone(_) => ApiError::unprocessable("invalid_phone", detail),
            Error::RefusedPhone(_) => ApiError::unprocessable("refused_phone", detail),
            Error::NoPhone => ApiError::unprocessable("sms_number_required", detail),
            Error::NoCode => ApiError::conflict("no_code", detail),
            Error::AlreadyVerified => ApiError::conflict("already_verified", detail),
            Error::TooManyCodes => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_codes",
                detail,
            )
            .with_retry_after(3600),
            Error::TooSoon(seconds) => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_soon",
                detail,
            )
            .with_retry_after(seconds),
            Error::WrongCode => ApiError::unprocessable("wrong_code", detail),
            Error::CodeSpent => ApiError::unprocessable("code_spent", detail),
        }
    }
}

/// Texts a new code to the caller's unverified number (the last one stops working).
#[utoipa::path(post, path = "/api/v1/notifications/sms-number/code", tag = "notifications", security(("bearer" = [])),
    responses((status = 202, description = "A new code is on its way"),
        (status = 409, description = "The number is verified already", body = ProblemBody),
        (status = 422, description = "No number is set (`sms_number_required`), or it is in a refused range (`refused_phone`)", body = ProblemBody),
        (status = 429, description = "A code went out less than a minute ago (`too_soon`), or five in 24 hours (`too_many_codes`); see Retry-After", body = ProblemBody)))]
pub async fn send_code(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<axum::http::StatusCode, ApiError> {
    service::resend_code(&state, identity.user_id).await?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

/// The code texted to the number.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCode {
    #[schema(max_length = 16)]
    pub code: String,
}

/// Verifies the caller's number with the code texted to it (ten minutes, five tries).
#[utoipa::path(post, path = "/api/v1/notifications/sms-number/verify", tag = "notifications", security(("bearer" = [])),
    request_body = VerifyCode,
    responses((status = 200, description = "Verified: the preferences after", body = Preferences),
        (status = 409, description = "No code is outstanding", body = ProblemBody),
        (status = 422, description = "A wrong code (`wrong_code`), or one expired or tried five times (`code_spent`)", body = ProblemBody)))]
pub async fn verify_code(
    State(state): State<AppState>,
    identity: Identity,
    JsonBody(request): JsonBody<VerifyCode>,
) -> Result<Json<Preferences>, ApiError> {
    let after = service::verify_code(&state, identity.user_id, &request.code).await?;
    Ok(Json(view(&after)))
}
