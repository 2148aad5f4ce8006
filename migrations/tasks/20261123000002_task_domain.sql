-- Tags, an optimistic-concurrency version (the ETag), and the status state machine's states.
ALTER TABLE tasks
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN version integer NOT NULL DEFAULT 1,
    ADD CONSTRAINT tasks_status_check CHECK (status IN ('todo', 'in_progress', 'done', 'cancelled'));
CREATE INDEX tasks_assignee ON tasks (assignee_id) WHERE assignee_id IS NOT NULL;

-- Every change to a task: who, when, what (field → {from, to}).
CREATE TABLE task_history (
    id       uuid PRIMARY KEY,
    task_id  uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    actor_id uuid NOT NULL,            -- the nil UUID for the system (e.g. an assignee deleted)
    at       timestamptz NOT NULL DEFAULT now(),
    changes  jsonb NOT NULL
);
CREATE INDEX task_history_task ON task_history (task_id, at, id);

-- task-svc's read model of users, kept from user.* events (no calls to user-svc per request).
CREATE TABLE users (
    id           uuid PRIMARY KEY,
    display_name text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
