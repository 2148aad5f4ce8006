-- Notifications over every channel (in-app, email, webhook, SMS), issue 11.

-- Who notify-svc can name and mail: a read model fed by user.created / user.updated /
-- user.deleted (notify-svc never reads user-svc's database).
CREATE TABLE users (
    id           uuid PRIMARY KEY,
    email        text NOT NULL,
    display_name text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- In-app notifications: who did it and where it links; one per (event, recipient, kind), so a
-- redelivered event or a second replica cannot write a second one.
ALTER TABLE notifications
    ADD COLUMN actor_id uuid,
    ADD COLUMN link     text;
CREATE UNIQUE INDEX notifications_once ON notifications (event_id, user_id, kind);
CREATE INDEX notifications_unread ON notifications (user_id, id DESC) WHERE read_at IS NULL;
CREATE INDEX notifications_by_id ON notifications (user_id, id DESC);

-- A person's choices per kind and channel; a missing row means the kind's default.
CREATE TABLE preferences (
    user_id    uuid NOT NULL,
    kind       text NOT NULL,
    channel    text NOT NULL CHECK (channel IN ('in_app', 'email', 'webhook', 'sms')),
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, kind, channel)
);

-- A person's SMS number (E.164), given with their preferences.
CREATE TABLE contacts (
    user_id    uuid PRIMARY KEY,
    phone      text CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Outgoing mail and SMS, one row per (event, recipient, kind, channel). The id is derived from
-- those (UUIDv5), so it is the same on every replica and every redelivery; the Message-ID of the
-- mail is made from it.
CREATE TABLE messages (
    id         uuid PRIMARY KEY,
    channel    text NOT NULL CHECK (channel IN ('email', 'sms')),
    user_id    uuid NOT NULL,
    kind       text NOT NULL,
    event_id   uuid NOT NULL,
    content    jsonb NOT NULL,            -- title, body, link, names: what the templates need
    state      text NOT NULL DEFAULT 'queued'
               CHECK (state IN ('queued', 'held', 'sent', 'digested', 'failed', 'skipped')),
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    digest_id  uuid,                      -- the digest mail that carried a held mail
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX messages_sent_recently ON messages (user_id, sent_at) WHERE state = 'sent';
CREATE INDEX messages_held ON messages (user_id, created_at) WHERE state = 'held';

-- Keys notify-svc makes once and shares between its replicas (the unsubscribe-link key).
CREATE TABLE secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
