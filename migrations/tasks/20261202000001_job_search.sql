-- Operators find jobs by payload content (GET /api/v1/admin/jobs?payload=..., PostgreSQL's @>)
-- and by kind without reading every job.
CREATE INDEX jobs_payload ON jobs USING gin (payload jsonb_path_ops);
CREATE INDEX jobs_kind ON jobs (kind, task_id DESC);
