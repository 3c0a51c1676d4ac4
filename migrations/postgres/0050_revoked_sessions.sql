-- Sessions signed out with DELETE /api/session: their cookies stay authentic until they
-- expire, so every node must refuse them until then.
CREATE TABLE revoked_sessions (
    sid        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL -- ms since the epoch: after this the cookie is dead anyway
);
CREATE INDEX revoked_sessions_by_expiry ON revoked_sessions (expires_at);
