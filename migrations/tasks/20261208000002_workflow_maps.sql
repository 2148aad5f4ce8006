-- Map steps (issue 27): a step that runs once per element of an array in another step's
-- result. Its own task stands for the whole (running while its runs do, then completed with
-- their results in order, or dead); each run is a task and job of its own, numbered here.
ALTER TABLE workflow_steps ADD COLUMN map jsonb;  -- {"step", "pointer"}
ALTER TABLE jobs ADD COLUMN item_index integer;    -- a map run's element (0-based)
CREATE INDEX jobs_workflow ON jobs (workflow_id, step) WHERE workflow_id IS NOT NULL;
