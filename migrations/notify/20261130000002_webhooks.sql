-- Outgoing webhooks (issue 11): endpoints people register, one delivery per (event, endpoint)
-- signed as Standard Webhooks specifies and retried on `webhooks.schedule_secs`, and the log of
-- every attempt.

-- An endpoint: where one user's events of the subscribed kinds are POSTed. The secret signs
-- every delivery; it is shown to its owner only when made (creation, rotation). After a rotation
-- the previous secret also signs until `previous_secret_until`, so receivers can switch over.
CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    user_id               uuid NOT NULL,
    url                   text NOT NULL,
    description           text NOT NULL DEFAULT '',
    event_types           text[] NOT NULL,             -- notification kinds, e.g. task.assigned
    secret                text NOT NULL,               -- whsec_<base64 of 32 random bytes>
    previous_secret       text,
    previous_secret_until timestamptz,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,                        -- why it was disabled (410, failing, owner)
    failing_since         timestamptz,                 -- first failure since the last success
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, id);

-- One event to one endpoint: the exact bytes sent (the CloudEvent JSON as received; bytea, so
-- the signed body never changes), where it stands, and when it is tried next. `locked_until` is
-- the lease of the replica sending it now: a crashed replica's claim comes back when it passes.
-- The id is time-ordered (UUIDv7) and makes the stable `webhook-id` (`msg_<id>`).
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    body            bytea NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        integer NOT NULL DEFAULT 0,   -- attempts since it was (re)queued
    next_attempt_at timestamptz,                  -- set while pending
    locked_until    timestamptz,                  -- set while an attempt is in flight
    last_status     integer,                      -- the HTTP status of the last answer
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
-- The claim: due pending deliveries per endpoint, and the leased (in-flight) ones per endpoint.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_due_any ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
-- An endpoint's deliveries, newest first (the deliveries page).
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id DESC);

-- Every attempt of a delivery: when, the HTTP status or the error, how long it took and the
-- first KiB of the answer.
CREATE TABLE webhook_attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at               timestamptz NOT NULL DEFAULT now(),
    status           integer,
    error            text,
    latency_ms       bigint NOT NULL,
    response_excerpt text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
