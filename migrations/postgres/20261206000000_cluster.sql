-- Cluster mode (`[cluster] database_url`): what every node shares. Mail, queues and tracking stay
-- in each node's own SQLite store; the runtime settings, accounts, the audit log and the staged
-- UI changes live here, and each node keeps a local copy of the settings and accounts so that it
-- starts and runs while this database is unreachable.

-- One JSON document per settings table, as in the SQLite store.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Generations: bumped by every change of the settings (with NOTIFY rampart_cluster 'settings')
-- or of the accounts (NOTIFY rampart_cluster 'users'). A node compares them with what it has in
-- force, so a lost notification is caught by the next heartbeat's check.
CREATE TABLE cluster_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    settings_generation BIGINT NOT NULL DEFAULT 0,
    users_generation BIGINT NOT NULL DEFAULT 0
);
INSERT INTO cluster_meta (id) VALUES (1);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'readonly')),
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    node TEXT NOT NULL,                   -- the node the change was made on
    "user" TEXT NOT NULL,
    source TEXT NOT NULL,
    comment TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE pending_tables (
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    base TEXT,
    PRIMARY KEY ("user", name)
);
CREATE TABLE pending_changes (
    id BIGSERIAL PRIMARY KEY,
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    description TEXT NOT NULL
);

-- Each node's heartbeat: what it runs and which settings it has in force.
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    smtp TEXT NOT NULL,
    web TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    settings_generation BIGINT NOT NULL
);
