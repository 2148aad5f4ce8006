-- Pools an admin paused: workers stop taking their jobs, which wait in the queue until resumed.
CREATE TABLE pool_pauses (
    pool      text PRIMARY KEY,
    paused_by uuid NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now()
);
