//! Labelled tasks and the trained priority models (`priority_models`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::priority::{LabelledRow, Model, Report};

/// Which tasks are labels: a priority a person set on a task of people, not on a job (a
/// program's priorities say nothing about words, and jobs would retrain the model every minute
/// while they are created by the thousand).
const LABELLED: &str =
    "priority_source = 'user' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = tasks.id)";

/// Every task whose priority a person set, by id.
pub async fn labelled(pool: &PgPool) -> Result<Vec<LabelledRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT id, title, description, due_at, created_at, priority FROM tasks
          WHERE {LABELLED} ORDER BY id"
    ))
    .fetch_all(pool)
    .await
}

/// How many tasks' priorities a person set.
pub async fn labelled_count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT count(*) FROM tasks WHERE {LABELLED}"))
        .fetch_one(pool)
        .await
}

/// Stores a trained model with its report.
pub async fn insert(pool: &PgPool, model: &Model, report: &Report) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO priority_models (id, trained_at, samples, accuracy, baseline_accuracy, model)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(report.trained_at)
    .bind(report.samples)
    .bind(report.accuracy)
    .bind(report.baseline_accuracy)
    .bind(sqlx::types::Json(model))
    .execute(pool)
    .await?;
    Ok(())
}

/// The newest model's report.
pub async fn latest_report(pool: &PgPool) -> Result<Option<Report>, sqlx::Error> {
    let row: Option<(DateTime<Utc>, i32, f64, f64)> = sqlx::query_as(
        "SELECT trained_at, samples, accuracy, baseline_accuracy FROM priority_models
          ORDER BY trained_at DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(trained_at, samples, accuracy, baseline_accuracy)| Report {
            trained_at,
            samples,
            accuracy,
            baseline_accuracy,
            in_use: accuracy > baseline_accuracy,
        },
    ))
}

/// The newest model with its accuracy and its baseline's.
pub async fn latest_model(pool: &PgPool) -> Result<Option<(Model, f64, f64)>, sqlx::Error> {
    let row: Option<(sqlx::types::Json<Model>, f64, f64)> = sqlx::query_as(
        "SELECT model, accuracy, baseline_accuracy FROM priority_models
          ORDER BY trained_at DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(model, accuracy, baseline)| (model.0, accuracy, baseline)))
}

/// How many labelled tasks the newest model learnt from.
pub async fn latest_samples(pool: &PgPool) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT samples FROM priority_models ORDER BY trained_at DESC LIMIT 1")
        .fetch_optional(pool)
        .await
}
