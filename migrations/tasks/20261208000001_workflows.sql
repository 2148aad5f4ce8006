-- Workflows (issue 27): a graph of steps, each an ordinary task with its job. A step's state is
-- its task's status (`pending` while it waits for what it needs), except `skipped`, kept here.

CREATE TABLE workflows (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL,
    title        text NOT NULL,
    status       text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    max_parallel integer CHECK (max_parallel BETWEEN 1 AND 10000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX workflows_owner ON workflows (owner_id, id DESC);

CREATE TABLE workflow_steps (
    workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    step        text NOT NULL,
    position    integer NOT NULL,
    task_id     uuid NOT NULL UNIQUE REFERENCES tasks (id) ON DELETE CASCADE,
    -- [{"step", "on_failure"}], as checked at creation
    needs       jsonb NOT NULL,
    skipped     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workflow_id, step)
);

-- A step's job knows its workflow, and carries the inputs its dispatches hand to the worker.
ALTER TABLE jobs
    ADD COLUMN workflow_id uuid REFERENCES workflows (id) ON DELETE SET NULL,
    ADD COLUMN step        text,
    ADD COLUMN inputs      jsonb,
    ADD COLUMN item        jsonb;
