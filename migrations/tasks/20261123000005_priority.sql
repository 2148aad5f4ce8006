-- Where a task's priority came from: the user, the trained model, or the documented heuristic.
ALTER TABLE tasks ADD COLUMN priority_source text NOT NULL DEFAULT 'user'
    CHECK (priority_source IN ('user', 'model', 'heuristic'));

-- Priority models trained on this deployment's own user-labelled tasks; the newest is used.
CREATE TABLE priority_models (
    id                uuid PRIMARY KEY,
    trained_at        timestamptz NOT NULL DEFAULT now(),
    samples           integer NOT NULL,        -- labelled tasks used (train + held out)
    accuracy          double precision NOT NULL, -- on the held-out split
    baseline_accuracy double precision NOT NULL, -- majority class on the same split
    model             jsonb NOT NULL
);
