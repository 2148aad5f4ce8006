-- Subtasks, relations between tasks, and recurrence.
-- A subtask names its parent; deleting the parent keeps its subtasks (they lose the parent).
ALTER TABLE tasks
    ADD COLUMN parent_id  uuid REFERENCES tasks (id) ON DELETE SET NULL,
    -- An RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO`): completing the task creates the next one.
    ADD COLUMN recurrence text;
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- One relation, stored once in its direction (`task_id` blocks / duplicates / relates to
-- `other_id`); each side reads it (the other as "blocked by", "duplicated by", "relates to").
CREATE TABLE task_relations (
    task_id    uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    other_id   uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('blocks', 'relates_to', 'duplicates')),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, other_id, kind),
    CHECK (task_id <> other_id)
);
CREATE INDEX task_relations_other ON task_relations (other_id);
