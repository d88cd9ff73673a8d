-- Invite codes for `[signup] mode = "invite"` (issue 24; the SQLite twin of migrations/postgres).
-- Only a SHA-256 of each code is kept: the codes are 256 random bits, so the hash alone cannot
-- be turned back into a usable code. A code is used once (used_by, used_at set in the sign-up's
-- transaction) and never after expires_at. Times are RFC 3339 text in UTC, which sorts in time
-- order.
CREATE TABLE invites (
    code_hash  BLOB NOT NULL PRIMARY KEY CHECK (length(code_hash) = 32),
    created_by BLOB NOT NULL CHECK (length(created_by) = 16),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_by    BLOB CHECK (used_by IS NULL OR length(used_by) = 16),
    used_at    TEXT
) STRICT;
-- A user's unused invites, counted against the per-user cap.
CREATE INDEX invites_created_by ON invites (created_by, expires_at) WHERE used_at IS NULL;
