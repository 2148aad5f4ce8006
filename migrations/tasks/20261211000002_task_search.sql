-- Full-text search of people's tasks (GET /api/v1/tasks?q=): their title and description as
-- words ('simple': no stemming, any language). Jobs are left out, so that creating and
-- running them costs this index nothing; `status` is already an indexed column (tasks_dead),
-- so this predicate takes no HOT update away.
CREATE INDEX tasks_search ON tasks
    USING gin (to_tsvector('simple', title || ' ' || description))
    WHERE status IN ('todo', 'in_progress', 'done', 'cancelled');

-- Tasks by tag (label): only tasks that have tags are indexed (jobs seldom do).
CREATE INDEX tasks_tags ON tasks USING gin (tags) WHERE tags <> '{}';
