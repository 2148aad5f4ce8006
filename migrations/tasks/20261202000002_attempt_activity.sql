-- The dashboard's charts read the last hour of ended runs (GET /api/v1/admin/jobs/activity).
CREATE INDEX IF NOT EXISTS job_attempts_ended ON job_attempts (ended_at) WHERE ended_at IS NOT NULL;
