//! `POST/GET /api/v1/tasks/{id}/attachments`: a task's files.

use axum::{
    extract::{Path, Request, State},
    http::{header, StatusCode},
    Json,
};
use shared::{identity::Identity, problem::ProblemBody, ApiError};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::for_file;
use super::multipart::Guard;
use super::views::FileList;
use crate::domain::names::FileName;
use crate::service::{access::Access, files, upload, Error};
use crate::{store, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, upload))
}

/// The body of an upload, as OpenAPI describes it: one part named `file` per file.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// A file; repeat the part for several.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/api/v1/tasks/{id}/attachments", tag = "media",
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "One part named `file` per file (with its file name), streamed"),
    responses(
        (status = 201, description = "Every file stored; `media.uploaded` published for each", body = FileList),
        (status = 400, description = "Not a multipart body, a part that is not named `file`, no file, too many files, or the upload broke off", body = ProblemBody),
        (status = 403, description = "The caller may see the task but not edit it, asked before the bytes are read and again after (a right lost while sending stores nothing)", body = ProblemBody),
        (status = 404, description = "No such task visible to the caller (before or after the bytes are read; nothing is stored)", body = ProblemBody),
        (status = 413, description = "A file is over the size limit (`file_too_large`) or the caller's quota (`quota_exceeded`); nothing is stored", body = ProblemBody),
        (status = 415, description = "A file's type (from its bytes) is not accepted, or it is SVG or HTML; nothing is stored", body = ProblemBody),
        (status = 422, description = "A file's name is refused, its extension contradicts its bytes, it holds markup a browser would run, it is empty, or an image over the pixel limit; nothing is stored", body = ProblemBody),
        (status = 429, description = "The caller has `files.max_uploads_per_user` uploads in progress (`too_many_uploads`); nothing is read", body = ProblemBody),
        (status = 503, description = "task-svc (asked for the edit right) or the object store is unavailable; nothing is stored", body = ProblemBody)))]
pub async fn upload(
    State(state): State<AppState>,
    identity: Identity,
    Path(task_id): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<FileList>), ApiError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let task_id = Uuid::parse_str(&task_id).map_err(|_| Error::NotFound)?;
    let access = state
        .tasks
        .access(&identity, task_id)
        .await
        .map_err(Error::from)?;
    files::allow(access, Access::Edit)?;
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send files as multipart/form-data (with a boundary), one part named `file` each",
            )
        })?;
    let guard = Guard::default();
    let mut multipart = multer::Multipart::new(guard.body(body), boundary);
    let config = &state.config.files;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The parts' own headers take a little room besides the files.
    let largest = u64::from(config.max_files_per_request) * (config.max_file_bytes + 64 * 1024);
    if declared.is_some_and(|length| length > largest) {
        return Err(Error::TooLarge {
            limit: config.max_file_bytes,
        }
        .into());
    }
    let used = {
        let mut conn = state.pool.acquire().await?;
        store::media::used_bytes(&mut conn, identity.user_id)
            .await?
            .max(0) as u64
    };
    // Held until the answer: the caller's other uploads in progress see what this one declared;
    // one sent without a length (chunked) holds all that is left of the quota, up to the
    // largest request, so that no bytes arrive that the quota has no room for.
    let holding =
        declared.unwrap_or_else(|| largest.min(config.user_quota_bytes.saturating_sub(used)));
    let Some((_slot, others)) = state.uploads.begin(identity.user_id, holding) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            format!(
                "you have {} uploads in progress; send this one when one of them has finished",
                config.max_uploads_per_user
            ),
        ));
    };
    // What the caller's uploads in progress declared counts as used until they end.
    let used = used.saturating_add(others);
    let mut received: Vec<upload::Received> = Vec::new();
    let outcome = receive_all(&state, &mut multipart, &guard, used, &mut received).await;
    // The edit right is asked again once the bytes are in: an upload can outlast it (the
    // uploader removed from the channel, demoted or deactivated while sending).
    let outcome = match outcome {
        Ok(()) => still_editable(&state, &identity, task_id).await,
        Err(err) => Err(err),
    };
    if let Err(err) = outcome {
        upload::discard(&state.blobs, &received).await;
        return Err(err);
    }
    let rows = upload::commit(&state, &identity, task_id, received).await?;
    metrics::counter!("taskmesh_media_uploaded_total").increment(rows.len() as u64);
    let files = rows.into_iter().map(|row| (row, Vec::new())).collect();
    Ok((StatusCode::CREATED, Json(FileList::new(files))))
}

/// Whether `identity` may still edit task `task_id`, as task-svc judges it now.
async fn still_editable(
    state: &AppState,
    identity: &Identity,
    task_id: Uuid,
) -> Result<(), ApiError> {
    let access = state.tasks.access(identity, task_id).await;
    files::allow(access.map_err(Error::from)?, Access::Edit)?;
    Ok(())
}

/// Streams every part into the store; `received` holds what was stored (to discard on error).
async fn receive_all(
    state: &AppState,
    multipart: &mut multer::Multipart<'static>,
    guard: &Guard,
    used: u64,
    received: &mut Vec<upload::Received>,
) -> Result<(), ApiError> {
    let config = &state.config.files;
    let quota = config.user_quota_bytes;
    let mut taken = used;
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::bad_request(
                "invalid_upload",
                format!("the multipart body is malformed: {e}"),
            )
        })?;
        let Some(field) = field else { break };
        let index = received.len() + 1;
        if field.name() != Some("file") {
            return Err(ApiError::bad_request(
                "invalid_upload",
                format!(
                    "part {index} is named {:?}; every part must be a file named `file`",
                    field.name().unwrap_or("")
                ),
            ));
        }
        if index > config.max_files_per_request as usize {
            return Err(ApiError::bad_request(
                "too_many_files",
                format!("at most {} files per request", config.max_files_per_request),
            ));
        }
        let raw_name = field.file_name().unwrap_or("").to_string();
        let name = FileName::parse(&raw_name).map_err(|e| for_file(e.into(), index, &raw_name))?;
        let remaining = quota.saturating_sub(taken);
        let rules = upload::Rules {
            max_bytes: remaining.min(config.max_file_bytes),
            quota: (remaining < config.max_file_bytes).then_some((quota, taken)),
            allowed_types: &config.allowed_types,
            max_image_pixels: config.max_image_pixels,
        };
        let file = upload::receive(&state.blobs, &rules, name, guard.data(field))
            .await
            .map_err(|e| for_file(e, index, &raw_name))?;
        taken += file.size;
        received.push(file);
    }
    if received.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_upload",
            "no file: send one part named `file` per file",
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}/attachments", tag = "media",
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses((status = 200, description = "The task's files, oldest first, with their thumbnails", body = FileList),
        (status = 404, description = "No such task visible to the caller", body = ProblemBody)))]
pub async fn list(
    State(state): State<AppState>,
    identity: Identity,
    Path(task_id): Path<String>,
) -> Result<Json<FileList>, ApiError> {
    let files = files::for_task(&state, &identity, &task_id).await?;
    Ok(Json(FileList::new(files)))
}
