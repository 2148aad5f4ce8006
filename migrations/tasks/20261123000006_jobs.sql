-- Automated tasks: a task with a job runs on a worker pool. Its status follows the job's
-- lifecycle (scheduled → queued → running → completed, or retrying, dead, cancelled).
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN (
    'todo', 'in_progress', 'done', 'cancelled',
    'pending', 'scheduled', 'queued', 'running', 'completed', 'retrying', 'dead'));

CREATE TABLE jobs (
    task_id         uuid PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    owner_id        uuid NOT NULL,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    pool            text NOT NULL,
    run_at          timestamptz,                 -- not before this (NULL: now)
    cron            text,                        -- recurring: this task is the template of its runs
    next_run_at     timestamptz,                 -- a cron template's next tick
    parent_id       uuid REFERENCES tasks (id) ON DELETE SET NULL, -- the cron template of a run
    scheduled_for   timestamptz,                 -- the tick a cron run belongs to
    max_attempts    integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    backoff_base_ms bigint NOT NULL,
    backoff_max_ms  bigint NOT NULL,
    timeout_ms      bigint NOT NULL,
    unique_key      text,
    -- unique_key while the job is live, NULL once it ended: a second enqueue with the same key
    -- finds the live one through the unique index below.
    unique_lock     text,
    attempt         integer NOT NULL DEFAULT 0,  -- dispatches so far (1 during the first run)
    dispatch_id     uuid,                        -- the current dispatch; reports of others are stale
    dispatch_event  uuid,                        -- its outbox row, dropped on cancel if unpublished
    current_run     uuid,                        -- the run that last started it
    lost_runs       integer NOT NULL DEFAULT 0,  -- runs of the current dispatch whose worker died
    progress        jsonb,
    progress_seq    bigint NOT NULL DEFAULT 0,
    result          jsonb,
    last_error      text,
    started_at      timestamptz,
    finished_at     timestamptz,
    dead_purged_at  timestamptz                  -- removed from the dead list by an admin
);
CREATE UNIQUE INDEX jobs_unique_live ON jobs (owner_id, unique_lock) WHERE unique_lock IS NOT NULL;
-- A cron tick creates exactly one run, however many schedulers race for it.
CREATE UNIQUE INDEX jobs_cron_tick ON jobs (parent_id, scheduled_for) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_cron_due ON jobs (next_run_at) WHERE cron IS NOT NULL;

-- Every run of a job: which worker, when, how it ended.
CREATE TABLE job_attempts (
    run_id      uuid PRIMARY KEY,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    dispatch_id uuid NOT NULL,
    attempt     integer NOT NULL,
    worker_id   text NOT NULL,
    started_at  timestamptz,
    ended_at    timestamptz,
    -- running, succeeded, failed, timed_out, cancelled, interrupted, lost
    outcome     text NOT NULL DEFAULT 'running',
    error       text,
    progress    jsonb
);
CREATE INDEX job_attempts_task ON job_attempts (task_id, started_at);
CREATE INDEX tasks_dead ON tasks (updated_at) WHERE status = 'dead';
