//! media-svc's files: each person's task that was created gets a file attached
//! (`faults-<req>.txt`); what the client was told of each upload, against media-svc's catalogue
//! and the objects on the S3 server.
//!
//! - **lost**: an ok upload whose row is missing, or whose object is not in the store.
//! - **duplicated**: more than one row for one upload.
//! - **unexpected**: a row for an upload the client was told had failed.
//! - **orphans**: objects in the store no row refers to (a crash or a cut connection between
//!   the store write and the commit, or a delete that failed): what media-svc's sweep removes.
//!   Counted over the whole store, so the column only grows.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use uuid::Uuid;

use crate::objects::S3Store;
use crate::workload::{file_name, Outcome, Record};

#[derive(Debug, Default)]
pub struct FileFigures {
    /// Uploads whose file is there (row and object).
    pub files: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub unexpected: usize,
    pub orphans: usize,
    pub notes: Vec<String>,
}

pub async fn files(
    media: &PgPool,
    store: &S3Store,
    records: &[Record],
) -> anyhow::Result<FileFigures> {
    let names: Vec<String> = records
        .iter()
        .filter(|r| r.upload.is_some())
        .map(|r| file_name(r.req))
        .collect();
    let rows: Vec<(String, Uuid, String)> = sqlx::query_as(
        "SELECT filename, id, object_key FROM media_objects WHERE filename = ANY($1)",
    )
    .bind(&names)
    .fetch_all(media)
    .await?;
    let mut by_name: HashMap<String, Vec<(Uuid, String)>> = HashMap::new();
    for (name, id, key) in rows {
        by_name.entry(name).or_default().push((id, key));
    }
    let keys = store.keys();
    let mut figures = FileFigures::default();
    for record in records {
        let Some(upload) = &record.upload else {
            continue;
        };
        let found = by_name.remove(&file_name(record.req)).unwrap_or_default();
        if found.iter().any(|(_, key)| keys.contains(key)) {
            figures.files += 1;
        }
        if found.len() > 1 {
            figures.duplicated += 1;
            figures.notes.push(format!(
                "duplicated: {} files for upload {}",
                found.len(),
                record.req
            ));
        }
        match upload {
            Outcome::Ok(id) => match found.iter().find(|(f, _)| f == id) {
                Some((_, key)) if keys.contains(key) => {}
                Some(_) => {
                    figures.lost += 1;
                    figures
                        .notes
                        .push(format!("lost: file {id}'s object is not in the store"));
                }
                None => {
                    figures.lost += 1;
                    figures
                        .notes
                        .push(format!("lost: ok upload {id} has no row"));
                }
            },
            Outcome::Failed(why) if !found.is_empty() => {
                figures.unexpected += 1;
                figures.notes.push(format!(
                    "unexpected: upload {} failed ({why}) but its file exists",
                    record.req
                ));
            }
            _ => {}
        }
    }
    let referenced: HashSet<String> = sqlx::query_scalar(
        "SELECT object_key FROM media_objects UNION ALL SELECT object_key FROM media_thumbnails",
    )
    .fetch_all(media)
    .await?
    .into_iter()
    .collect();
    figures.orphans = keys.iter().filter(|k| !referenced.contains(*k)).count();
    Ok(figures)
}
