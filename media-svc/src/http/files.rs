//! `/api/v1/media/...`: one file's metadata, its bytes, a signed link to them, its deletion;
//! and the caller's own uploads.

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::StreamExt;
use serde::Deserialize;
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::views::{FileList, FileView, LinkView};
use crate::service::{access::Access, files, Error};
use crate::{store, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mine))
        .routes(routes!(read, delete))
        .routes(routes!(content))
        .routes(routes!(link))
}

#[utoipa::path(get, path = "/api/v1/media", tag = "media",
    responses((status = 200, description = "The caller's uploads on tasks they may still see, newest first (of the latest 100)", body = FileList)))]
pub async fn mine(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<FileList>, ApiError> {
    Ok(Json(FileList::new(files::mine(&state, &identity).await?)))
}

#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media",
    params(("id" = uuid::Uuid, Path, description = "File id")),
    responses((status = 200, description = "The file's metadata, with its thumbnails once made", body = FileView),
        (status = 404, description = "No such file on a task visible to the caller", body = ProblemBody)))]
pub async fn read(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<Json<FileView>, ApiError> {
    let row = files::visible(&state, &identity, &id, Access::Read).await?;
    let (row, thumbs) = files::with_thumbnails(&state, vec![row])
        .await?
        .pop()
        .ok_or(Error::NotFound)?;
    Ok(Json(FileView::new(row, thumbs)))
}

#[utoipa::path(delete, path = "/api/v1/media/{id}", tag = "media",
    params(("id" = uuid::Uuid, Path, description = "File id")),
    responses((status = 204, description = "Deleted, with its thumbnails; `media.deleted` published"),
        (status = 403, description = "The caller may see the task but not edit it", body = ProblemBody),
        (status = 404, description = "No such file on a task visible to the caller", body = ProblemBody)))]
pub async fn delete(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    files::delete(&state, &identity, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// A thumbnail instead of the file, e.g. `thumb-256` (see the file's `thumbnails`).
    #[param(max_length = 40)]
    pub variant: Option<String>,
    /// A signed link's expiry (Unix seconds).
    #[param(max_length = 20)]
    pub expires: Option<String>,
    /// A signed link's signature; with it, no token is needed.
    #[param(max_length = 100)]
    pub signature: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/media/{id}/content", tag = "media",
    params(("id" = uuid::Uuid, Path, description = "File id"), ContentQuery,
        ("Range" = Option<String>, Header, description = "`bytes=<from>-<to>`, `bytes=<from>-` or `bytes=-<last>`: one range"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a copy the client holds")),
    responses(
        (status = 200, description = "The bytes, as `attachment` with the stored type, `ETag`, `Accept-Ranges` and `X-Content-Type-Options: nosniff`", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The requested range, with `Content-Range`", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "The client's copy is current"),
        (status = 403, description = "A signed link that expired, was changed, or is for another file, variant or method", body = ProblemBody),
        (status = 404, description = "No such file (or variant) on a task visible to the caller", body = ProblemBody),
        (status = 416, description = "The range starts past the end; `Content-Range: bytes */<size>`", body = ProblemBody)))]
pub async fn content(
    State(state): State<AppState>,
    identity: Result<Identity, ApiError>,
    method: Method,
    Path(id): Path<String>,
    Query(query): Query<ContentQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let variant = query.variant.as_deref().filter(|v| !v.is_empty());
    let row = match &query.signature {
        Some(signature) => {
            // HEAD is GET without the body: a GET link answers both.
            let method = if method == Method::HEAD {
                "GET"
            } else {
                method.as_str()
            };
            state
                .links
                .verify(
                    method,
                    &id,
                    variant.unwrap_or(""),
                    query.expires.as_deref().unwrap_or(""),
                    signature,
                    chrono::Utc::now(),
                )
                .map_err(Error::from)?;
            let id = Uuid::parse_str(&id).map_err(|_| Error::NotFound)?;
            store::media::get(&state.pool, id)
                .await?
                .ok_or(Error::NotFound)?
        }
        None => files::visible(&state, &identity?, &id, Access::Read).await?,
    };
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let download = files::open(
        &state,
        &row,
        variant,
        header_text(header::RANGE),
        header_text(header::IF_NONE_MATCH),
    )
    .await?;
    Ok(respond(download))
}

fn respond(download: files::Download) -> Response {
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    match download {
        files::Download::NotModified { etag } => {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            response.headers_mut().insert(header::ETAG, value(&etag));
            response
        }
        files::Download::Unsatisfiable { size } => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {size} bytes"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
            response
        }
        files::Download::Bytes {
            content_type,
            filename,
            etag,
            size,
            range,
            stream,
        } => {
            let (status, length) = match &range {
                Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
                None => (StatusCode::OK, size),
            };
            let body = Body::from_stream(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, value(&content_type));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            let name = crate::domain::names::FileName::parse(&filename)
                .map(|n| n.content_disposition())
                .unwrap_or_else(|_| "attachment".into());
            headers.insert(header::CONTENT_DISPOSITION, value(&name));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            // Even opened directly, the bytes run nothing.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            headers.insert(header::ETAG, value(&etag));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-cache"),
            );
            if let Some(r) = range {
                headers.insert(
                    header::CONTENT_RANGE,
                    value(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
                );
            }
            response
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// A link to a thumbnail instead of the file.
    #[param(max_length = 40)]
    pub variant: Option<String>,
    /// How long the link works, in seconds (at most `files.link_ttl_secs`, 900 by default).
    #[param(minimum = 1)]
    pub ttl_secs: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/media/{id}/link", tag = "media",
    params(("id" = uuid::Uuid, Path, description = "File id"), LinkQuery),
    responses((status = 200, description = "A signed URL that downloads the file with GET, without a token, until `expires_at`", body = LinkView),
        (status = 404, description = "No such file (or variant) on a task visible to the caller", body = ProblemBody)))]
pub async fn link(
    State(state): State<AppState>,
    identity: Identity,
    Path(id): Path<String>,
    Query(query): Query<LinkQuery>,
) -> Result<Json<LinkView>, ApiError> {
    let row = files::visible(&state, &identity, &id, Access::Read).await?;
    let variant = query.variant.as_deref().filter(|v| !v.is_empty());
    if let Some(variant) = variant {
        let thumbs = store::media::thumbnails(&state.pool, &[row.id]).await?;
        if !thumbs.iter().any(|t| t.variant == variant) {
            return Err(Error::NotFound.into());
        }
    }
    let (url, expires_at) = files::link(&state, &row, variant, query.ttl_secs);
    Ok(Json(LinkView {
        url,
        method: "GET".into(),
        expires_at,
    }))
}
