-- Read positions (issue 22): how far each member has read each chat, as the `time` (a version-1
-- TimeUUID) of the newest message they have seen. `read_ticks` is that TimeUUID's 60-bit
-- timestamp, so "only forward" is one comparison in the upsert's WHERE. The primary key serves
-- "my positions in these chats" (the chat list) and the upsert.
CREATE TABLE read_positions (
    user_id    UUID        NOT NULL,
    chat_id    UUID        NOT NULL,
    read_up_to UUID        NOT NULL,
    read_ticks BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, chat_id)
);
