-- A room's stream holds events beside messages, each with the room's next seq: `kind` says
-- which (`message`, `deleted`), `target` is the message an event is about. A deleted message
-- keeps its row (its seq is part of the stream) as a tombstone: `deleted` set, text emptied.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN target INTEGER;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
