//! One-click unsubscribe (RFC 8058) from the link every mail carries: `POST` with the signed
//! token turns that kind's mail off, without logging in; `GET` (what a browser opens) shows a
//! page with a button that posts, so link scanners that fetch URLs change nothing. An altered
//! or foreign token is a 403.

use axum::{
    extract::{Query, State},
    response::Html,
};
use serde::Deserialize;
use shared::{problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::domain::{Channel, Kind};
use crate::service::preferences::{self as service, Change};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(unsubscribe_page, unsubscribe))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The signed token from the mail's link.
    pub token: String,
}

fn checked(state: &AppState, token: &str) -> Result<(uuid::Uuid, Kind), ApiError> {
    state.links.verify(token).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "invalid_link",
            "this unsubscribe link is not valid; open your notification preferences instead",
        )
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[utoipa::path(get, path = "/api/v1/notifications/unsubscribe", tag = "notifications",
    params(TokenQuery),
    responses((status = 200, description = "A page that confirms with one button", body = String, content_type = "text/html"),
        (status = 400, description = "No token", body = ProblemBody),
        (status = 403, description = "Not a valid link", body = ProblemBody)))]
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let Query(query) = query?;
    let (_, kind) = checked(&state, &query.token)?;
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
         <body><h1>Stop “{kind}” mail?</h1>\
         <form method=\"post\" action=\"?token={}\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form></body></html>",
        escape(&query.token)
    )))
}

#[utoipa::path(post, path = "/api/v1/notifications/unsubscribe", tag = "notifications",
    params(TokenQuery),
    responses((status = 200, description = "That kind's mail is off", body = String, content_type = "text/html"),
        (status = 400, description = "No token", body = ProblemBody),
        (status = 403, description = "Not a valid link", body = ProblemBody),
        (status = 422, description = "The preferences cannot take the change", body = ProblemBody)))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let Query(query) = query?;
    let (user_id, kind) = checked(&state, &query.token)?;
    let change = Change {
        switches: vec![(kind, Channel::Email, false)],
        phone: None,
    };
    service::set(&state, user_id, change)
        .await
        .map_err(|e| match e {
            service::Error::Db(e) => ApiError::from(e),
            other => ApiError::unprocessable("invalid_preferences", other.to_string()),
        })?;
    tracing::info!(%user_id, %kind, "unsubscribed by link");
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head>\
         <body><h1>Done</h1><p>You will get no more “{kind}” mail. Change it back in your notification preferences.</p></body></html>"
    )))
}
