-- The unique index of client_ids leads with the client_id, not the room, as in SQLite's
-- migration 0160 (which says why): the web UI's client_ids are UUIDv7s, which start with the
-- time, so new entries land near the end of the index instead of on a page per room a batch
-- touches. What the index enforces is unchanged: one message per (room, user, client_id).
DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_id ON messages (client_id, user_id, room);
