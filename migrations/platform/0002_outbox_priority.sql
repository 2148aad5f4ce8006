-- The AMQP priority of an outbox row's message (job dispatches carry their task's priority).
ALTER TABLE outbox ADD COLUMN priority smallint CHECK (priority BETWEEN 0 AND 255);
