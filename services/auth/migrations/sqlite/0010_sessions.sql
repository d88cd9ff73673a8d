-- Login sessions (the embedded SQLite twin of migrations/postgres): each login starts one; its
-- refresh tokens rotate on every use, and all of a session's tokens ever issued are kept until
-- it expires, so presenting a used one is recognised as reuse and revokes the session.
CREATE TABLE sessions (
    id         BLOB NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens by their SHA-256 (the token itself is never stored).
CREATE TABLE refresh_tokens (
    token_hash BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  TEXT NOT NULL,
    used_at    TEXT
) STRICT;
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
