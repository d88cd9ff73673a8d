-- The user search (GET /api/v1/users?q=prefix) is a range on username in byte order; this index
-- serves it whatever the database's collation (the unique index follows that collation, where
-- punctuation may sort out of byte order and a prefix is no range).
CREATE INDEX users_username_bytes ON users ((username COLLATE "C"));
