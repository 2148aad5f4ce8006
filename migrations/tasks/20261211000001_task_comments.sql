-- Comments on tasks: Markdown written by anyone who can see the task, edited or deleted by
-- its author. Deleting the task deletes them.
CREATE TABLE task_comments (
    id         uuid PRIMARY KEY,
    task_id    uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author_id  uuid NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz
);
CREATE INDEX task_comments_task ON task_comments (task_id, created_at, id);

-- Who each comment has named: a person is told the first time a comment names them (an edit
-- that names someone new tells only them).
CREATE TABLE task_comment_mentions (
    comment_id uuid NOT NULL REFERENCES task_comments (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    PRIMARY KEY (comment_id, user_id)
);
