-- Sessions signed out with DELETE /api/session: their cookies stay authentic until they
-- expire, so the server must remember to refuse them until then.
CREATE TABLE revoked_sessions (
    sid        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL -- ms since the epoch: after this the cookie is dead anyway
) WITHOUT ROWID;
CREATE INDEX revoked_sessions_by_expiry ON revoked_sessions (expires_at);
