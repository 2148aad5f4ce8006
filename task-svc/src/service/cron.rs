//! Cron templates' runs: each due tick creates one run, exactly once.

use chrono::{DateTime, Utc};
use shared::outbox::{self};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::job::parse_cron,
    domain::{status::Status, task::Task},
    service::jobs::{insert, Inserted},
    store,
};

/// Creates the due runs of cron templates: one task per tick, exactly once however many
/// task-svc replicas run this (the template row is locked with `SKIP LOCKED`, and a unique index
/// on `(parent_id, scheduled_for)` refuses a second run of a tick). A tick missed while nothing
/// ran (the platform was down) runs once, then the schedule continues from now. A tick whose
/// owner already has `max_live` jobs waiting or running is skipped ([`crate::service::quotas::skips_tick`]).
pub async fn cron_round(
    pool: &PgPool,
    cache: &crate::infra::list_cache::ListCache,
    max_live: u32,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let due = store::cron::due(&mut tx).await?;
    let mut created = Vec::new();
    for (template_id, expression, tick) in due {
        let template = store::tasks::find(&mut tx, template_id, false)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if crate::service::quotas::skips_tick(&mut tx, template.owner_id, max_live).await? {
            advance_cron(&mut tx, template_id, &expression, tick).await?;
            continue;
        }
        created.extend(run_tick(&mut tx, &template, tick).await?);
        advance_cron(&mut tx, template_id, &expression, tick).await?;
    }
    // The new runs are in their owners' (and channels') lists from the commit on, cached first
    // pages included.
    let audience =
        crate::store::tasks::audience_many(&mut tx, &created.iter().collect::<Vec<_>>()).await?;
    tx.commit().await?;
    cache.invalidate(&audience).await;
    Ok(created.len())
}

/// Creates `template`'s run of `tick` in `tx`, with its events; `None` when that tick has a run
/// already (or its job cannot be made now).
pub async fn run_tick(
    tx: &mut PgConnection,
    template: &Task,
    tick: DateTime<Utc>,
) -> Result<Option<Task>, sqlx::Error> {
    let parsed = store::cron::template_job(tx, template.id).await?;
    let run = insert_run(tx, template).await?;
    match insert(tx, &run, &parsed, Some((template.id, tick))).await {
        Ok(Inserted::Created(view, job_events)) => {
            let mut run = run;
            run.job = Some(*view);
            let events = crate::domain::events::of_creation(&run, Uuid::nil(), job_events, None)?;
            outbox::enqueue_all(tx, events).await?;
            Ok(Some(run))
        }
        Ok(Inserted::Duplicate(_)) | Err(_) => {
            store::tasks::delete(tx, &[run.id]).await?;
            Ok(None)
        }
    }
}

/// A run's task: the template's fields, queued, inserted as every new task is
/// ([`store::tasks::insert_many`], as `POST /api/v1/tasks` does).
async fn insert_run(tx: &mut PgConnection, template: &Task) -> Result<Task, sqlx::Error> {
    let run = store::tasks::NewTasks {
        ids: vec![Uuid::now_v7()],
        owner_id: template.owner_id,
        titles: vec![template.title.clone()],
        descriptions: vec![template.description.clone()],
        priorities: vec![template.priority],
        due_at: vec![None],
        assignees: vec![None],
        tags: vec![template.tags.clone()],
        channels: vec![template.channel_id],
        sources: vec![template.priority_source],
        statuses: vec![Status::Queued],
        parents: vec![None],
        recurrences: vec![None],
    };
    store::tasks::insert_many(tx, &run)
        .await?
        .pop()
        .ok_or(sqlx::Error::RowNotFound)
}

/// Moves a template's next tick past `tick` (and past now).
async fn advance_cron(
    tx: &mut PgConnection,
    template_id: Uuid,
    expression: &str,
    tick: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let next = parse_cron(expression)
        .ok()
        .and_then(|schedule| schedule.after(&tick.max(Utc::now())).next());
    crate::store::jobs::set_next_run(tx, template_id, next).await
}
