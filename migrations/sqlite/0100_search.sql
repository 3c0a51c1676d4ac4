-- Full-text search of messages' current text (FTS5). Rows are keyed by tokens made of hex, so
-- that a room's rows and one message's row are found through the index: `room_key` is the room
-- name in hex, `msg_key` that plus `x` and the seq. Triggers keep it in step with `messages`:
-- a message is indexed when stored, re-indexed when edited, and dropped when deleted.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    room_key,
    msg_key,
    seq UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind = 'message' AND new.deleted = 0
BEGIN
    INSERT INTO messages_fts (text, room_key, msg_key, seq)
    VALUES (new.text, hex(new.room), hex(new.room) || 'x' || new.seq, new.seq);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, deleted ON messages
WHEN new.kind = 'message'
BEGIN
    DELETE FROM messages_fts WHERE rowid IN (
        SELECT rowid FROM messages_fts
        WHERE messages_fts MATCH 'msg_key : ' || hex(old.room) || 'x' || old.seq
    );
    INSERT INTO messages_fts (text, room_key, msg_key, seq)
    SELECT new.text, hex(new.room), hex(new.room) || 'x' || new.seq, new.seq
    WHERE new.deleted = 0;
END;

INSERT INTO messages_fts (text, room_key, msg_key, seq)
SELECT text, hex(room), hex(room) || 'x' || seq, seq
FROM messages WHERE kind = 'message' AND deleted = 0;
