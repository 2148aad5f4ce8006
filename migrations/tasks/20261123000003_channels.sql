-- Channels: public tasks shared with the members, who join with the channel's code.
CREATE TABLE channels (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    owner_id   uuid NOT NULL,
    join_code  text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE channel_members (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX channel_members_user ON channel_members (user_id);

ALTER TABLE tasks ADD CONSTRAINT tasks_channel_fk FOREIGN KEY (channel_id) REFERENCES channels (id);
CREATE INDEX tasks_channel ON tasks (channel_id, created_at DESC, id DESC) WHERE channel_id IS NOT NULL;
