-- The runs not yet ended, by task: a report looks here for a dispatch's other runs to mark lost.
-- It holds only what has not ended, so it stays the cheapest way in however stale the table's
-- statistics are. Built inside the migration's transaction (not CONCURRENTLY: that waits for
-- every other transaction, including replicas waiting on the migration lock, a deadlock), so
-- writes to job_attempts wait for the one scan of the table it takes.
CREATE INDEX IF NOT EXISTS job_attempts_running ON job_attempts (task_id) WHERE outcome = 'running';
