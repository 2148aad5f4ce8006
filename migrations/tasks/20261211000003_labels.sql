-- Labels: a tag's colour, a person's own or a channel's (shared by its members). A task
-- carries labels as tags (`tasks.tags`, lower-case), so a label filters the list like a tag.
CREATE TABLE labels (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    color      text NOT NULL,
    owner_id   uuid,
    channel_id uuid REFERENCES channels (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((owner_id IS NULL) <> (channel_id IS NULL))
);
CREATE UNIQUE INDEX labels_personal ON labels (owner_id, name) WHERE owner_id IS NOT NULL;
CREATE UNIQUE INDEX labels_channel ON labels (channel_id, name) WHERE channel_id IS NOT NULL;
