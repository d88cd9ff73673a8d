-- Read positions (issue 22; the SQLite twin of migrations/postgres): how far each member has
-- read each chat, as the `time` (a version-1 TimeUUID) of the newest message they have seen.
-- `read_ticks` is that TimeUUID's 60-bit timestamp, so "only forward" is one comparison in the
-- upsert's WHERE. The primary key serves "my positions in these chats" and the upsert.
CREATE TABLE read_positions (
    user_id    BLOB    NOT NULL CHECK (length(user_id) = 16),
    chat_id    BLOB    NOT NULL CHECK (length(chat_id) = 16),
    read_up_to BLOB    NOT NULL CHECK (length(read_up_to) = 16),
    read_ticks INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (user_id, chat_id)
) STRICT, WITHOUT ROWID;
