-- Who blocked whom (issue 24; the SQLite twin of migrations/postgres). A row stops both people
-- from starting a chat with each other or writing in their chat until the blocker deletes it.
-- The primary key serves "my blocks" and the pair lookup on every send; the second index serves
-- the reverse direction of that lookup.
CREATE TABLE blocks (
    blocker    BLOB NOT NULL CHECK (length(blocker) = 16),
    blocked    BLOB NOT NULL CHECK (length(blocked) = 16),
    created_at TEXT NOT NULL,
    PRIMARY KEY (blocker, blocked),
    CONSTRAINT blocks_not_self CHECK (blocker <> blocked)
) STRICT, WITHOUT ROWID;
CREATE INDEX blocks_blocked ON blocks (blocked, blocker);
