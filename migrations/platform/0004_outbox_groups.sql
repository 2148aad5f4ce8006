-- A transaction's messages that are due at once share one row: routing_key 'outbox.group',
-- payload an array of {id, routing_key, priority, event}, `messages` how many. Writing,
-- claiming and marking a row costs about as much for one message as for a hundred; a job's
-- creation writes three messages and its end one more. A message that must wait (a reminder,
-- a scheduled run, a retry) keeps a row of its own, which can be moved or dropped by its id.
ALTER TABLE outbox ADD COLUMN messages integer NOT NULL DEFAULT 1 CHECK (messages >= 1);

-- Every message, grouped or not, as a row, in publication order (seq, position): for people
-- and tests reading the outbox.
CREATE VIEW outbox_messages AS
    SELECT id, seq, 1::bigint AS position, exchange, routing_key, payload, priority, created_at,
           available_at, published_at, attempts, last_error
      FROM outbox
     WHERE routing_key <> 'outbox.group'
    UNION ALL
    SELECT (m->>'id')::uuid, o.seq, g.position, NULL, m->>'routing_key', m->'event',
           (m->>'priority')::smallint, o.created_at, o.available_at, o.published_at,
           o.attempts, o.last_error
      FROM outbox o, jsonb_array_elements(o.payload) WITH ORDINALITY AS g(m, position)
     WHERE o.routing_key = 'outbox.group';

-- A group's payload is a few kilobytes (a creation's three events, a report batch's ends):
-- kept in the row up to a page, and compressed with lz4 where the server has it, instead of
-- pglz, which cost more CPU than the rest of the insert.
ALTER TABLE outbox SET (toast_tuple_target = 8160);
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;
