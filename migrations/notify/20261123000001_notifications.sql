-- In-app notifications, one row per recipient.
CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    kind       text NOT NULL,            -- e.g. welcome, task_created, task_assigned
    title      text NOT NULL,
    body       text NOT NULL DEFAULT '',
    subject    text,                     -- the id of what it is about (task id, ...)
    event_id   uuid NOT NULL,            -- the event that caused it
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC, id DESC);
