-- Files attached to tasks: what was stored, how it was processed, its thumbnails, the tasks that
-- are gone (a late upload to one is refused) and the key that signs download links.
ALTER TABLE media_objects
    ADD COLUMN sha256 text NOT NULL DEFAULT '',
    ADD COLUMN state text NOT NULL DEFAULT 'stored'
        CHECK (state IN ('stored', 'processed', 'skipped', 'refused')),
    ADD COLUMN processing_error text;
CREATE INDEX media_objects_task ON media_objects (task_id, created_at, id);

CREATE TABLE media_thumbnails (
    media_id     uuid NOT NULL REFERENCES media_objects (id) ON DELETE CASCADE,
    variant      text NOT NULL,
    object_key   text NOT NULL UNIQUE,
    content_type text NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    size_bytes   bigint NOT NULL,
    PRIMARY KEY (media_id, variant)
);

CREATE TABLE deleted_tasks (
    task_id    uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
