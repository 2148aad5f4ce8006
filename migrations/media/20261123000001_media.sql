-- Uploaded objects; the bytes live in the object store, this is their catalogue.
CREATE TABLE media_objects (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL,
    task_id      uuid,
    filename     text NOT NULL,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    object_key   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_objects_owner ON media_objects (owner_id, created_at DESC);
