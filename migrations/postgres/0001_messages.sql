-- The same shape as the SQLite schema, in PostgreSQL's types: times are BIGINT milliseconds since
-- the Unix epoch, ids TEXT, seqs BIGINT.

-- Rooms exist from their first stored message. `last_seq` is the room's sequence counter: every
-- append locks its rooms' rows first and moves the counter in the same transaction as the
-- messages, so appends to one room serialise on that row (across every node), appends to
-- different rooms do not wait for each other, and a failed batch rolls back with its seqs.
CREATE TABLE rooms (
    name        TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    last_active BIGINT NOT NULL
);

CREATE INDEX rooms_by_activity ON rooms (last_active DESC);

-- Keyed on (room, seq): every read is a range of one room's seqs.
CREATE TABLE messages (
    room      TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    id        TEXT NOT NULL,
    ts        BIGINT NOT NULL,
    user_id   TEXT NOT NULL,
    user_name TEXT NOT NULL,
    text      TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (room, seq)
);

-- Safe retry, across nodes too: one message per (room, user, client_id).
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id);
