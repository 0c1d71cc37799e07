-- Web admin: sessions, pending (uncommitted) UI changes, the audit log of configuration changes.

-- Browser sessions. The cookie carries a random token; only its SHA-256 is stored, so a copy of
-- the database does not hand out live sessions.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,                  -- the session's CSRF token, embedded in every form
    created_at INTEGER NOT NULL,         -- unix seconds
    last_seen INTEGER NOT NULL           -- unix seconds; idle sessions expire
) STRICT;

-- Settings tables an administrator changed in the UI and has not committed yet (AsyncOS
-- "Commit Changes"): one JSON document per user and table, and what each change was.
CREATE TABLE pending_tables (
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user, name)
) STRICT;
CREATE TABLE pending_changes (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    description TEXT NOT NULL
) STRICT;

-- Every configuration change that took effect: who, when, through what, what, and why.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,                 -- unix seconds
    user TEXT NOT NULL,
    source TEXT NOT NULL,                -- ui | api | cli
    comment TEXT NOT NULL,
    changes TEXT NOT NULL                -- one description per line
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);

-- Facts about the running appliance (its start time, for `status` and System Status).
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
