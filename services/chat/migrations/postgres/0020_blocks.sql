-- Who blocked whom (issue 24). A row stops both people from starting a chat with each other or
-- writing in their chat until the blocker deletes it. The primary key serves "my blocks" and
-- the pair lookup on every send; the second index serves the reverse direction of that lookup.
CREATE TABLE blocks (
    blocker    UUID        NOT NULL,
    blocked    UUID        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker, blocked),
    CONSTRAINT blocks_not_self CHECK (blocker <> blocked)
);
CREATE INDEX blocks_blocked ON blocks (blocked, blocker);
