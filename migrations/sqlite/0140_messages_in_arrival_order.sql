-- Messages are kept in the order they were stored (a rowid table) instead of clustered by
-- (room, seq), and found by room and seq through an index.
--
-- Why: a batch spread over 1,000 rooms inserted into 1,000 places of a table of whole rows,
-- and each of those leaf pages (about 15 rows of 250 bytes) was split often and written whole
-- to the WAL at every commit. Appending rows at the end of the table touches a few pages per
-- batch; the (room, seq) index still has a leaf per room, but its entries are a tenth of a
-- row, so it splits ten times less often and stays in the page cache. `benches/hot_paths.rs`
-- and BENCHMARKS.md ("Persistence") have the figures.
--
-- The full-text index is keyed by the message's rowid too, which drops the per-message key
-- term (`msg_key`) that the old index needed to find a message's row again: one unique term
-- per message was the largest part of its size and of its merge work.

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_update;
DROP TRIGGER messages_fts_delete;
DROP TABLE messages_fts;

CREATE TABLE messages_by_arrival (
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

-- Within a room, rowid order is seq order (the writer inserts a room's messages in seq order),
-- which the search relies on to page newest first.
INSERT INTO messages_by_arrival (room, seq, id, ts, user_id, user_name, text, client_id,
                                 user_guest, kind, target, deleted, edited_at, reply_to, added)
SELECT room, seq, id, ts, user_id, user_name, text, client_id,
       user_guest, kind, target, deleted, edited_at, reply_to, added
FROM messages ORDER BY room, seq;

DROP TABLE messages;
ALTER TABLE messages_by_arrival RENAME TO messages;

CREATE UNIQUE INDEX messages_by_seq ON messages (room, seq);
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id);

-- Contentless: the text lives in `messages`; the index only answers "which rowids match".
-- `contentless_delete` lets edits, deletions and retention remove a row by its rowid.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    room_key,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind = 'message' AND new.deleted = 0
BEGIN
    INSERT INTO messages_fts (rowid, text, room_key) VALUES (new.rowid, new.text, hex(new.room));
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, deleted ON messages
WHEN new.kind = 'message'
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid AND old.deleted = 0;
    INSERT INTO messages_fts (rowid, text, room_key)
    SELECT new.rowid, new.text, hex(new.room) WHERE new.deleted = 0;
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind = 'message' AND old.deleted = 0
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
END;

INSERT INTO messages_fts (rowid, text, room_key)
SELECT rowid, text, hex(room) FROM messages WHERE kind = 'message' AND deleted = 0;
