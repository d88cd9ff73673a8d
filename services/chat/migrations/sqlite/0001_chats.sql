-- The chat service's tables (the embedded SQLite twin of migrations/postgres). They live in the
-- auth service's database file, next to its `users` table (read, never written, by the chat
-- service), and are migrated through their own table `_confab_chat_migrations`. UUIDs are 16-byte
-- blobs (compared bytewise, as PostgreSQL compares its uuid type); timestamps are RFC 3339 text in
-- UTC, which sorts in time order.

-- One row per 1:1 chat. The members are stored as an ordered pair, so "one chat per pair" is a
-- unique constraint that also holds under concurrent requests.
CREATE TABLE chats (
    id            BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_low      BLOB NOT NULL CHECK (length(user_low) = 16),
    user_high     BLOB NOT NULL CHECK (length(user_high) = 16),
    created_by    BLOB NOT NULL CHECK (length(created_by) = 16),
    created_at    TEXT NOT NULL,
    last_activity TEXT NOT NULL,
    CONSTRAINT chats_pair_key UNIQUE (user_low, user_high),
    CONSTRAINT chats_pair_order CHECK (user_low < user_high)
) STRICT;
CREATE INDEX chats_low_activity ON chats (user_low, last_activity DESC, id DESC);
CREATE INDEX chats_high_activity ON chats (user_high, last_activity DESC, id DESC);

-- Idempotent sends: the record produced for a (sender, client_message_id).
CREATE TABLE client_messages (
    sender            BLOB    NOT NULL CHECK (length(sender) = 16),
    client_message_id TEXT    NOT NULL,
    chat_id           BLOB    NOT NULL CHECK (length(chat_id) = 16),
    record            TEXT    NOT NULL,
    acked             INTEGER NOT NULL,
    created_at        TEXT    NOT NULL,
    PRIMARY KEY (sender, client_message_id)
) STRICT;
CREATE INDEX client_messages_created_at ON client_messages (created_at);

-- The embedded history, written by the pipeline's SqlHistorySink. `ticks` is the TimeUUID's
-- 60-bit timestamp, so the primary key orders a chat's messages by time.
CREATE TABLE message_history (
    chat_id    TEXT    NOT NULL,
    ticks      INTEGER NOT NULL,
    time       BLOB    NOT NULL CHECK (length(time) = 16),
    message_id TEXT    NOT NULL,
    from_user  TEXT    NOT NULL,
    to_user    TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    time_iso   TEXT    NOT NULL,
    group_id   BLOB    NOT NULL CHECK (length(group_id) = 16),
    PRIMARY KEY (chat_id, ticks, time)
) STRICT, WITHOUT ROWID;
