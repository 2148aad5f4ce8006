-- Email verification: the token mailed at registration (or on request), stored only as its
-- SHA-256; one per account, replaced by a new request, gone once used.
CREATE TABLE email_verifications (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- The bootstrap admin is promoted once per configured address: a demotion sticks, and an
-- address registered again after its account was deleted is not promoted again.
CREATE TABLE bootstrap_admins (
    email       text PRIMARY KEY,
    user_id     uuid NOT NULL,
    promoted_at timestamptz NOT NULL DEFAULT now()
);
