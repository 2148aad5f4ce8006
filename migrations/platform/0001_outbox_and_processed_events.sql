-- Platform tables every service database carries (see shared/src/outbox.rs and idempotency.rs).

-- Events written in the same transaction as the change they announce; the relay publishes them.
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,             -- the CloudEvent id (UUIDv7), also the AMQP message-id
    seq          bigserial NOT NULL UNIQUE,    -- publication order
    exchange     text,                         -- NULL: the events exchange of this deployment
    routing_key  text NOT NULL,
    payload      jsonb NOT NULL,               -- the whole CloudEvent
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(), -- not published before this (delayed messages)
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX outbox_pending_seq ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_pending_due ON outbox (available_at) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay when rows commit (NOTIFY is delivered at commit, never for a rollback).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskmesh_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Events each consumer has applied, recorded in the same transaction as the effect.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_at ON processed_events (processed_at);
