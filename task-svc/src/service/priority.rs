//! Priority prediction over the store: training, the newest model and its report, and
//! retraining when labelled tasks have grown (see [`crate::domain::priority`]).

use sqlx::PgPool;

use crate::{
    domain::priority::{train, Predictor, Report, MIN_SAMPLES, RETRAIN_EVERY},
    store,
};

/// Trains on every user-labelled task, stores the model and returns its report. `None` when
/// there are too few labelled tasks or only one priority among them.
pub async fn retrain(pool: &PgPool) -> Result<Option<Report>, sqlx::Error> {
    let rows = store::priority::labelled(pool).await?;
    let Some((model, report)) = train(rows) else {
        return Ok(None);
    };
    store::priority::insert(pool, &model, &report).await?;
    tracing::info!(
        samples = report.samples,
        accuracy = report.accuracy,
        baseline = report.baseline_accuracy,
        "priority model trained"
    );
    Ok(Some(report))
}

/// The newest model's report.
pub async fn latest(pool: &PgPool) -> Result<Option<Report>, sqlx::Error> {
    store::priority::latest_report(pool).await
}

/// The newest model, if it beats the baseline; otherwise predictions use the heuristic.
pub async fn predictor(pool: &PgPool) -> Result<Predictor, sqlx::Error> {
    let row = store::priority::latest_model(pool).await?;
    Ok(Predictor(row.and_then(|(model, accuracy, baseline)| {
        (accuracy > baseline).then_some(model)
    })))
}

/// Retrains when labelled tasks have grown by [`RETRAIN_EVERY`] since the newest model (or there
/// is none yet and enough data).
pub async fn retrain_if_due(pool: &PgPool) -> Result<(), sqlx::Error> {
    let labelled = store::priority::labelled_count(pool).await?;
    let last = store::priority::latest_samples(pool).await?;
    let due = match last {
        None => labelled >= MIN_SAMPLES,
        Some(samples) => labelled - i64::from(samples) >= RETRAIN_EVERY,
    };
    if due {
        retrain(pool).await?;
    }
    Ok(())
}
