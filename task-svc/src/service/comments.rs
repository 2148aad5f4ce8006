//! Comments on a task: anyone who can see the task reads and writes them; only their author
//! edits them; their author or an admin deletes them. Each change is announced (live on open
//! pages), and a person a comment names for the first time who can see the task is told.

use shared::{identity::Identity, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        comment::{mentions, parse_body, render, Comment},
        events,
        task::Task,
    },
    error::TaskError,
    service::tasks::visible_task,
    store, AppState,
};

fn rendered(mut comment: Comment) -> Comment {
    comment.body_html = render(&comment.body);
    comment
}

/// Task `task_id`'s comments, oldest first, if `identity` may see the task.
pub async fn list(
    state: &AppState,
    identity: &Identity,
    task_id: &str,
) -> Result<Vec<Comment>, TaskError> {
    let mut conn = state.pool.acquire().await?;
    let task = visible_task(&mut conn, identity, task_id).await?;
    let comments = store::comments::list(&mut conn, task.id).await?;
    Ok(comments.into_iter().map(rendered).collect())
}

/// The people `body` names among those who can see `task`.
async fn named(conn: &mut PgConnection, task: &Task, body: &str) -> Result<Vec<Uuid>, TaskError> {
    if !body.contains('@') {
        return Ok(Vec::new());
    }
    let audience = store::tasks::audience(conn, task).await?;
    let candidates = store::comments::names(conn, &audience).await?;
    Ok(mentions(body, &candidates))
}

/// Records who `comment` names and announces it (`change`) in `tx`.
async fn announce(
    tx: &mut PgConnection,
    task: &Task,
    comment: &Comment,
    change: &str,
) -> Result<(), TaskError> {
    let named = named(tx, task, &comment.body).await?;
    let new = store::comments::add_mentions(tx, comment.id, &named).await?;
    outbox::enqueue_all(tx, events::of_comment(task, comment, change, &new)?).await?;
    Ok(())
}

/// A new comment by `identity` on task `task_id`.
pub async fn create(
    state: &AppState,
    identity: &Identity,
    task_id: &str,
    body: &str,
) -> Result<Comment, TaskError> {
    let body = parse_body(body)?;
    let mut tx = state.pool.begin().await?;
    let task = visible_task(&mut tx, identity, task_id).await?;
    let id = Uuid::now_v7();
    store::comments::insert(&mut tx, id, task.id, identity.user_id, &body).await?;
    // A commenter follows the task, unless they unfollowed it before.
    store::watchers::follow_by_default(&mut tx, task.id, identity.user_id).await?;
    let comment = store::comments::find(&mut tx, task.id, id, false)
        .await?
        .ok_or(TaskError::NotFound("comment"))?;
    announce(&mut tx, &task, &comment, "created").await?;
    tx.commit().await?;
    Ok(rendered(comment))
}

/// The comment `comment_id` on a task `identity` may see, locked; 404 otherwise.
async fn own(
    tx: &mut PgConnection,
    identity: &Identity,
    task_id: &str,
    comment_id: &str,
) -> Result<(Task, Comment), TaskError> {
    let task = visible_task(tx, identity, task_id).await?;
    let id = Uuid::parse_str(comment_id).map_err(|_| TaskError::NotFound("comment"))?;
    let comment = store::comments::find(tx, task.id, id, true)
        .await?
        .ok_or(TaskError::NotFound("comment"))?;
    Ok((task, comment))
}

/// Replaces the text of `identity`'s own comment.
pub async fn edit(
    state: &AppState,
    identity: &Identity,
    task_id: &str,
    comment_id: &str,
    body: &str,
) -> Result<Comment, TaskError> {
    let body = parse_body(body)?;
    let mut tx = state.pool.begin().await?;
    let (task, comment) = own(&mut tx, identity, task_id, comment_id).await?;
    if comment.author_id != identity.user_id {
        return Err(TaskError::Forbidden(
            "only a comment's author can edit it".into(),
        ));
    }
    store::comments::edit(&mut tx, comment.id, &body).await?;
    let comment = store::comments::find(&mut tx, task.id, comment.id, false)
        .await?
        .ok_or(TaskError::NotFound("comment"))?;
    announce(&mut tx, &task, &comment, "edited").await?;
    tx.commit().await?;
    Ok(rendered(comment))
}

/// Deletes a comment: its author's, or any for an admin.
pub async fn delete(
    state: &AppState,
    identity: &Identity,
    task_id: &str,
    comment_id: &str,
) -> Result<(), TaskError> {
    let mut tx = state.pool.begin().await?;
    let (task, comment) = own(&mut tx, identity, task_id, comment_id).await?;
    if comment.author_id != identity.user_id && !identity.is_admin() {
        return Err(TaskError::Forbidden(
            "only a comment's author or an admin can delete it".into(),
        ));
    }
    store::comments::delete(&mut tx, comment.id).await?;
    outbox::enqueue_all(
        &mut tx,
        events::of_comment(&task, &comment, "deleted", &[])?,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
