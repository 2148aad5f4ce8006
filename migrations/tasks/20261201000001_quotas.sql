-- Pools an admin opened to members by naming them in a job (besides `jobs.pools` and
-- `workers.pools`).
CREATE TABLE pools (
    name       text PRIMARY KEY,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A member's live jobs and cron templates are counted on every creation.
CREATE INDEX jobs_owner_live ON jobs (owner_id) WHERE finished_at IS NULL;
