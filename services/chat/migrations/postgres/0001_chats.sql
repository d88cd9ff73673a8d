-- The chat service's tables. They live in the auth service's database, next to its `users`
-- table (read, never written, by the chat service), and are migrated through their own table
-- `_confab_chat_migrations` so that the two services' migrations never see each other.

-- One row per 1:1 chat. The members are stored as an ordered pair, so "one chat per pair" is a
-- unique constraint that also holds under concurrent requests.
CREATE TABLE chats (
    id            UUID        PRIMARY KEY,
    user_low      UUID        NOT NULL,
    user_high     UUID        NOT NULL,
    created_by    UUID        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_activity TIMESTAMPTZ NOT NULL,
    CONSTRAINT chats_pair_key UNIQUE (user_low, user_high),
    CONSTRAINT chats_pair_order CHECK (user_low < user_high)
);
-- A user's chats, most recently active first, come from these two (one per side of the pair).
CREATE INDEX chats_low_activity ON chats (user_low, last_activity DESC, id DESC);
CREATE INDEX chats_high_activity ON chats (user_high, last_activity DESC, id DESC);

-- Idempotent sends: the record produced for a (sender, client_message_id), kept so that a retry
-- returns, or produces again, exactly the same record (same message_id and time).
CREATE TABLE client_messages (
    sender            UUID        NOT NULL,
    client_message_id TEXT        NOT NULL,
    chat_id           UUID        NOT NULL,
    record            TEXT        NOT NULL,
    acked             BOOLEAN     NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sender, client_message_id)
);
CREATE INDEX client_messages_created_at ON client_messages (created_at);

-- The embedded history: written by the pipeline's SqlHistorySink, read by the history endpoints.
-- `ticks` is the TimeUUID's 60-bit timestamp (100 ns units since 1582-10-15), so the primary
-- key orders a chat's messages by time; writing a message again is a no-op.
CREATE TABLE message_history (
    chat_id    TEXT   NOT NULL,
    ticks      BIGINT NOT NULL,
    time       UUID   NOT NULL,
    message_id TEXT   NOT NULL,
    from_user  TEXT   NOT NULL,
    to_user    TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    time_iso   TEXT   NOT NULL,
    group_id   UUID   NOT NULL,
    PRIMARY KEY (chat_id, ticks, time)
);
