-- Users of confab. Ids are UUIDv7, so ordering by id is ordering by creation time.
CREATE TABLE users (
    id            UUID        PRIMARY KEY,
    username      TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_length CHECK (char_length(username) BETWEEN 3 AND 32)
);
