-- Who may read a room. A room with no row (it exists only while someone is in it, as rooms
-- joined by name always did) is public, ownerless, without members or bans. Rows made here
-- (created rooms, DMs, rooms given an owner or a ban) start with last_seq 0: the message
-- writer owns last_seq and last_active and never touches these columns.
ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'; -- 'public' | 'private'
ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';

-- A room's members and their roles ('owner' | 'moderator' | 'member'). A private room is read
-- only by its members; in a public room a row only gives a role.
CREATE TABLE room_members (
    room     TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    role     TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);
-- "My private rooms" and "my direct messages".
CREATE INDEX room_members_by_user ON room_members (user_id, room);

-- Users who may not join a room (public or private) until the ban is lifted.
CREATE TABLE room_bans (
    room      TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    banned_by TEXT NOT NULL,
    banned_at BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);
