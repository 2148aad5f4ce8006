-- Per-key limits (docs/jobs.md, "Per-key limits"): the jobs of one owner that share a limit key
-- never run more than its concurrency at once nor start faster than its per_second.

-- One row per (owner, key), locked by every admission of the key's jobs: creations, ends and
-- the sweep agree on how many are in flight and on the pace.
CREATE TABLE job_limits (
    owner_id    uuid NOT NULL,
    key         text NOT NULL,
    -- The settings of the key's latest job.
    concurrency integer,
    per_second  double precision,
    -- The earliest start of the next job admitted (a steady pace of per_second).
    next_at     timestamptz NOT NULL DEFAULT 'epoch',
    PRIMARY KEY (owner_id, key)
);

ALTER TABLE jobs
    ADD COLUMN limit_key         text,
    ADD COLUMN limit_concurrency integer,
    ADD COLUMN limit_per_second  double precision,
    -- NULL: no limit, not yet eligible (a workflow step waiting for its needs, a cron
    -- template), or ended; 'waiting': over its limit, no dispatch; 'admitted': dispatched,
    -- holding one of its key's places until its run ends (a job cancelled while a worker
    -- holds it keeps the place until that run's report).
    ADD COLUMN limit_state       text CHECK (limit_state IN ('waiting', 'admitted')),
    -- Since when it waited (its admission measures the wait).
    ADD COLUMN limit_since       timestamptz;

-- Counting a key's jobs in flight and finding its oldest waiting ones.
CREATE INDEX jobs_limit_live ON jobs (owner_id, limit_key, limit_state, limit_since)
    WHERE limit_state IS NOT NULL;
