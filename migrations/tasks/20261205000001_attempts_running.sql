-- no-transaction
-- The runs not yet ended, by task: a report looks here for a dispatch's other runs to mark lost.
-- It holds only what has not ended, so it stays small and the cheapest way in however stale the
-- table's statistics are. Built without blocking the reports and starts written meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_attempts_running ON job_attempts (task_id)
    WHERE outcome = 'running';
