-- Personal calendar feeds (GET /api/v1/calendar/{secret}.ics): one per person, kept as the
-- SHA-256 of the secret in its address. A new feed replaces the old one, whose address stops
-- working.
CREATE TABLE calendar_feeds (
    user_id     uuid PRIMARY KEY,
    secret_hash bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A feed lists its person's dated tasks by due date.
CREATE INDEX tasks_owner_due ON tasks (owner_id, due_at DESC) WHERE due_at IS NOT NULL;
CREATE INDEX tasks_assignee_due ON tasks (assignee_id, due_at DESC) WHERE due_at IS NOT NULL AND assignee_id IS NOT NULL;
