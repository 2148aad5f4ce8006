-- The read model of users also answers what a user may do now, for a question another service
-- asks when long work ends (an upload's commit):
-- - `role`: the role each user holds (from `user.created` and `user.updated`); NULL: not heard
--   of since this column came (the asserted role then stands). It only ever lowers an asserted
--   role: a stale row must never raise one.
-- - `event_id`: the last `user.*` event applied (UUIDv7, ordered by time), so that events handled
--   out of order (concurrent handlers, retries) never bring back an older state.
-- - `deleted`: a deleted user is kept as a tombstone (inactive, unknown to assignments), so that
--   a late `user.updated` does not bring them back.
ALTER TABLE users
    ADD COLUMN role text CHECK (role IN ('admin', 'member', 'worker')),
    ADD COLUMN event_id uuid,
    ADD COLUMN deleted boolean NOT NULL DEFAULT false;
