-- Login sessions: each login starts one; its refresh tokens rotate on every use, and all of a
-- session's tokens ever issued are kept until it expires, so presenting a used one is recognised
-- as reuse (a stolen token) and revokes the session.
CREATE TABLE sessions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens by their SHA-256 (the token itself is never stored).
CREATE TABLE refresh_tokens (
    token_hash BYTEA       PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id UUID        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
