-- Mail goes only to verified addresses (user-svc verifies them; `user.updated` says so).
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
