-- Each user's read marker per room: the seq up to which they have read. It only moves forward.
CREATE TABLE read_markers (
    user_id TEXT NOT NULL,
    room    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (user_id, room)
) WITHOUT ROWID;
