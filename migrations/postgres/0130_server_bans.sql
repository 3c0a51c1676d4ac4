-- A user banned from the whole server by an administrator (the admin view): no session of
-- theirs is honoured and they may not sign in. Ordinary lookups go by id or session, so the
-- partial index only serves the admin view's list of banned users.
ALTER TABLE users ADD COLUMN banned BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX users_banned ON users (name) WHERE banned;
