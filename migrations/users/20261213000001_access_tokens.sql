-- Personal access tokens: long-lived, scoped, revocable credentials for programs. Only the
-- token's SHA-256 is kept; the token itself is shown once, when it is made. Its id is the
-- "session" the gateway checks on every request (the Redis mirror), so a revocation takes
-- effect at once on every gateway.
CREATE TABLE access_tokens (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    scopes         text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 6),
    token_hash     bytea NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    last_used_at   timestamptz,
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at DESC);
