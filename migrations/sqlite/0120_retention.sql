-- Retention deletes messages: their full-text rows go with them (edits and deletions already
-- keep the index in step through `messages_fts_update`).
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind = 'message' AND old.deleted = 0
BEGIN
    DELETE FROM messages_fts WHERE rowid IN (
        SELECT rowid FROM messages_fts
        WHERE messages_fts MATCH 'msg_key : ' || hex(old.room) || 'x' || old.seq
    );
END;
