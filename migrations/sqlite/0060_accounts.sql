-- Every user with a session: guests (no username, no password) and accounts. Guests get a row
-- when their session starts, so registering turns the same row (the same id, so their earlier
-- messages stay theirs) into an account.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    username      TEXT UNIQUE,          -- lowercase; NULL for guests
    password_hash TEXT,                 -- argon2id PHC string; NULL for guests
    admin         INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- Live sessions. The cookie names one by `sid`; a session that is not here (signed out,
-- revoked, expired) is refused.
CREATE TABLE sessions (
    sid        TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Whether the author was a guest when they wrote it (messages carry `user.guest`). Everything
-- from before accounts existed was written by guests.
ALTER TABLE messages ADD COLUMN user_guest INTEGER NOT NULL DEFAULT 1;
