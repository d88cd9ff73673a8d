-- Invite codes for `[signup] mode = "invite"` (issue 24). Only a SHA-256 of each code is kept:
-- the codes are 256 random bits, so the hash alone cannot be turned back into a usable code.
-- A code is used once (used_by, used_at set in the sign-up's transaction) and never after
-- expires_at.
CREATE TABLE invites (
    code_hash  BYTEA       PRIMARY KEY,
    created_by UUID        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_by    UUID,
    used_at    TIMESTAMPTZ,
    CONSTRAINT invites_code_hash_length CHECK (octet_length(code_hash) = 32)
);
-- A user's unused invites, counted against the per-user cap.
CREATE INDEX invites_created_by ON invites (created_by, expires_at) WHERE used_at IS NULL;
