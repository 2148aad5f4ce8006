-- A mail or text is claimed before it is sent (state 'sending' with a lease), so two copies of
-- its command, or two replicas, cannot both send it; a crashed sender's claim lapses.
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('queued', 'sending', 'held', 'sent', 'digested', 'failed', 'skipped'));
ALTER TABLE messages ADD COLUMN locked_until timestamptz;
CREATE INDEX messages_sending ON messages (user_id, channel) WHERE state = 'sending';
