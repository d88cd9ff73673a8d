-- Users of confab (the embedded SQLite twin of migrations/postgres). Ids are UUIDv7 stored as
-- 16-byte blobs, so ordering by id is ordering by creation time here too.
CREATE TABLE users (
    id            BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    username      TEXT NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
) STRICT;
