-- The runs still open, by task: a report looks here for a dispatch's other runs to mark lost.
-- Small (only what is running now), so it stays the cheapest way in however stale the table's
-- statistics are.
CREATE INDEX IF NOT EXISTS job_attempts_running ON job_attempts (task_id) WHERE outcome = 'running';
