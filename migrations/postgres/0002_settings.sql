-- Cluster-wide settings every node must agree on, e.g. the session-signing secret when
-- CONFAB_SECRET is not given: the first node to start stores one, the others read it.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
