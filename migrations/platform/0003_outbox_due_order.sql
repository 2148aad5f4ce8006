-- The relay takes due rows in the order they became due: (available_at, seq). Ordered by seq
-- alone, each round walked past every row not yet due (a scheduled job's dispatch, a reminder)
-- to find the due ones, so a thousand scheduled jobs cost every round a thousand row visits.
-- With this index a round reads only the rows it takes.
CREATE INDEX outbox_pending ON outbox (available_at, seq) WHERE published_at IS NULL;
DROP INDEX outbox_pending_seq;
DROP INDEX outbox_pending_due;

-- A row is due from the moment it is written, not from its transaction's start: a transaction
-- that waited for another's lock writes its events after the other's, and its rows must not
-- sort before them.
ALTER TABLE outbox ALTER COLUMN available_at SET DEFAULT clock_timestamp();

-- Every published row leaves a dead entry in the pending index until it is vacuumed; vacuum it
-- after a few thousand changes, not after a fifth of a day's events.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000,
                        autovacuum_analyze_scale_factor = 0.0, autovacuum_analyze_threshold = 5000);
