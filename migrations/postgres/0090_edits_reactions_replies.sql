-- Edits, reactions and replies (events beside `deleted`). A message's row holds its current
-- state: its text as last edited (`edited_at`), the message it answers (`reply_to`). Reaction
-- events say whether they `added` their reaction. Who reacted with what, now, is `reactions`.
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN added BOOLEAN;

CREATE TABLE reactions (
    room       TEXT NOT NULL,
    target     BIGINT NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    user_guest BOOLEAN NOT NULL,
    seq        BIGINT NOT NULL, -- the reaction event's: the order reactions were given
    PRIMARY KEY (room, target, emoji, user_id)
);
