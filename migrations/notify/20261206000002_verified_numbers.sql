-- Texts go only to numbers verified with a code sent to them (stored as a SHA-256 of the user
-- and the code; at most five tries, ten minutes).
ALTER TABLE contacts
    ADD COLUMN phone_verified_at timestamptz,
    ADD COLUMN code_hash         bytea,
    ADD COLUMN code_sent_at      timestamptz,
    ADD COLUMN code_attempts     integer NOT NULL DEFAULT 0;
