-- Rooms exist from their first stored message; `last_seq` is the room's sequence counter, moved
-- only inside the transaction that stores messages, so a failed batch burns no seq.
CREATE TABLE rooms (
    name        TEXT PRIMARY KEY NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    last_active INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX rooms_by_activity ON rooms (last_active DESC);

-- Clustered on (room, seq): every read is a range of one room's seqs.
CREATE TABLE messages (
    room      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    id        TEXT NOT NULL,
    ts        INTEGER NOT NULL,
    user_id   TEXT NOT NULL,
    user_name TEXT NOT NULL,
    text      TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

-- Safe retry: one message per (room, user, client_id).
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id);
