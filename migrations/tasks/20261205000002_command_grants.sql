-- Pools in which members may create `command` jobs: an admin grants it (admins always may).
CREATE TABLE pool_command_grants (
    pool       text PRIMARY KEY,
    granted_by uuid NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now()
);
