-- Edits, reactions and replies (events beside `deleted`). A message's row holds its current
-- state: its text as last edited (`edited_at`), the message it answers (`reply_to`). Reaction
-- events say whether they `added` their reaction. Who reacted with what, now, is `reactions`.
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
ALTER TABLE messages ADD COLUMN added INTEGER;

CREATE TABLE reactions (
    room       TEXT NOT NULL,
    target     INTEGER NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    user_guest INTEGER NOT NULL,
    seq        INTEGER NOT NULL, -- the reaction event's: the order reactions were given
    PRIMARY KEY (room, target, emoji, user_id)
) WITHOUT ROWID;
