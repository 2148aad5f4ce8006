//! The queue of workers' reports (`job.started`, `job.progress`, `job.finished` and its
//! batches): decoded here, applied by [`crate::service::job_reports`].

use shared::{
    config::JobsConfig,
    consumer::{BatchHandler, Handler, HandlerError, Incoming},
    events::{CloudEvent, EventPayload, JobFinished, JobOutcome, JobProgress, JobStarted},
    idempotency,
};
use sqlx::{PgConnection, PgPool};

use crate::{
    domain::task::Task,
    service::job_reports::{
        commit, complete_many, mark_finished, on_finished, on_progress, on_started,
    },
};

/// Consumer name of the report handler in `processed_events`.
pub const CONSUMER: &str = "task-svc.job-reports";

/// Applies workers' reports (`job.started`, `job.progress`, `job.finished`) to tasks.
pub struct JobReports {
    pub pool: PgPool,
    pub cache: crate::infra::list_cache::ListCache,
    pub config: JobsConfig,
}

fn reject(err: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
    HandlerError::Reject(err.into())
}

impl JobReports {
    /// Applies one report inside `tx` (once: duplicates are recognised and skipped). Returns the
    /// task if its status changed.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &CloudEvent,
    ) -> Result<Option<Task>, HandlerError> {
        if !idempotency::first_time(tx, CONSUMER, event.id).await? {
            return Ok(None);
        }
        Ok(match event.event_type.as_str() {
            JobStarted::TYPE => {
                on_started(tx, event.decode().map_err(reject)?, &self.config).await?
            }
            JobProgress::TYPE => on_progress(tx, event.decode().map_err(reject)?).await?,
            JobFinished::TYPE => {
                on_finished(tx, event.decode().map_err(reject)?, &self.config).await?
            }
            other => {
                return Err(HandlerError::Reject(anyhow::anyhow!(
                    "not a job report: {other}"
                )))
            }
        })
    }

    /// Commits `tx`, then invalidates the cached lists that show the changed tasks.
    async fn finish(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Postgres>,
        touched: Vec<Task>,
    ) -> Result<(), HandlerError> {
        Ok(commit(tx, &touched, &self.cache).await?)
    }
}

impl Handler for JobReports {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(message)).await
    }
}

impl BatchHandler for JobReports {
    /// A batch in one transaction. Successes, the bulk of a busy queue, are applied together in
    /// a few set-based statements; every other report goes through [`JobReports::apply`] in
    /// arrival order. The order between the two does not matter: each report is applied on its
    /// own merits (stale dispatches, finished tasks and late starts are recognised).
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        // A worker's `job.finished.batch` counts as its reports, each once.
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            events.extend(message.event.expand_reports().map_err(reject)?);
        }
        let mut successes = Vec::new();
        let mut others = Vec::new();
        // The dispatches whose runs succeeded: marked for workers while the batch is applied
        // (it is acked only after both, so a crash before the mark marks them again).
        let mut succeeded = Vec::new();
        for event in &events {
            let mut ended = None;
            if event.event_type == JobFinished::TYPE {
                if let Ok(report) = event.decode::<JobFinished>() {
                    if report.outcome == JobOutcome::Succeeded {
                        succeeded.push((report.dispatch_id, report.outcome));
                        successes.push((report, event.traceparent.clone()));
                        continue;
                    }
                    ended = Some((report.dispatch_id, report.outcome));
                }
            }
            others.push((event, ended));
        }
        let apply = async {
            let mut tx = self.pool.begin().await?;
            let mut touched = Vec::new();
            // Other ends (failed, timed out, cancelled) are marked only when they were the
            // dispatch's current run: a stale run's failure must not stop the run that took over.
            let mut ended = Vec::new();
            for (event, end) in others {
                // The events a report causes continue its trace.
                let applied =
                    shared::trace::scope(event.traceparent.clone(), self.apply(&mut tx, event))
                        .await?;
                if applied.is_some() {
                    ended.extend(end);
                }
                touched.extend(applied);
            }
            // Workflow steps that ended move their workflows on, in this transaction: those of
            // successes are known; other ends are looked up.
            let (completed, workflows, keys) = complete_many(&mut tx, successes).await?;
            let moved = crate::service::workflows::advance::after_changes(
                &mut tx,
                &self.config,
                &touched,
                workflows,
            )
            .await?;
            // Jobs that ended free their keys' places: the next waiting ones are admitted.
            crate::service::limits::after_ends(&mut tx, &touched, keys).await?;
            touched.extend(completed);
            touched.extend(moved);
            mark_finished(&self.cache, &ended).await;
            self.finish(tx, touched).await
        };
        let ((), applied) = tokio::join!(mark_finished(&self.cache, &succeeded), apply);
        applied
    }
}
