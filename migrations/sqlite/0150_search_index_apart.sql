-- The full-text index leaves this file: it lives in `search.db` beside it, kept up to date by a
-- thread of its own that reads the messages log (`src/store/sqlite/search.rs`), instead of by
-- triggers inside the writer's transactions.
--
-- Why: indexing was most of a batch's cost (about 20 µs of FTS5 work per message, against 2 µs
-- for the row and its indexes into one room), and it ran on the single writer's thread, in
-- every commit. Apart, the writer stores a batch without it, and the indexer indexes thousands
-- of messages per transaction (about 9 µs each) on the other core. The index is derived: it
-- can always be rebuilt from this file, so it is not part of a backup.
--
-- Messages get an explicit, never-reused position (`pos`, AUTOINCREMENT): the indexer resumes
-- from the last position it indexed, so a position must never come back after retention
-- deleted the newest rows (a plain rowid would). Within a room, pos order is seq order (the
-- writer inserts a room's messages in seq order), which the search relies on to page newest
-- first.

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_update;
DROP TRIGGER messages_fts_delete;
DROP TABLE messages_fts;

CREATE TABLE messages_numbered (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    room       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    id         TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    text       TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_guest INTEGER NOT NULL DEFAULT 1,
    kind       TEXT NOT NULL DEFAULT 'message',
    target     INTEGER,
    deleted    INTEGER NOT NULL DEFAULT 0,
    edited_at  INTEGER,
    reply_to   INTEGER,
    added      INTEGER
);

INSERT INTO messages_numbered (pos, room, seq, id, ts, user_id, user_name, text, client_id,
                               user_guest, kind, target, deleted, edited_at, reply_to, added)
SELECT rowid, room, seq, id, ts, user_id, user_name, text, client_id,
       user_guest, kind, target, deleted, edited_at, reply_to, added
FROM messages ORDER BY rowid;

DROP TABLE messages;
ALTER TABLE messages_numbered RENAME TO messages;

CREATE UNIQUE INDEX messages_by_seq ON messages (room, seq);
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id);

-- Positions of indexed messages that retention deleted: the indexer drops them from the index,
-- then from here. Edits and deletions need no such list: they are events in the log, which the
-- indexer reads anyway.
CREATE TABLE search_forget (pos INTEGER PRIMARY KEY);

CREATE TRIGGER messages_forget AFTER DELETE ON messages
WHEN old.kind = 'message' AND old.deleted = 0
BEGIN
    INSERT OR IGNORE INTO search_forget (pos) VALUES (old.pos);
END;

-- Which database an index was built from: an index whose source differs (the file was replaced
-- by another server's) is rebuilt.
CREATE TABLE search_source (id TEXT NOT NULL);
INSERT INTO search_source (id) VALUES (lower(hex(randomblob(16))));
