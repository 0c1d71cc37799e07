-- Rampart's store. Append-only: never edit a migration that has shipped; add a new one.

-- ID counters: each holds the next unreserved value. The appliance reserves IDs in blocks, so a
-- restart skips the unused rest of a block and an ID is never handed out twice.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, next) VALUES ('mid', 1), ('icid', 1), ('dcid', 1);

-- One row per accepted message (per MID).
CREATE TABLE messages (
    mid INTEGER PRIMARY KEY,
    icid INTEGER NOT NULL,
    received_at INTEGER NOT NULL,        -- unix seconds
    sender TEXT NOT NULL,                -- envelope sender; '' is the null sender <>
    remote_ip TEXT NOT NULL,
    helo TEXT NOT NULL,
    sender_group TEXT NOT NULL,          -- HAT sender group that accepted the connection
    relayed INTEGER NOT NULL,            -- 1 when the client was RELAY (outgoing mail)
    policy TEXT NOT NULL DEFAULT 'DEFAULT', -- the mail policy this MID was processed under
    verdict TEXT NOT NULL DEFAULT 'deliver', -- deliver | drop | bounce | quarantine
    findings TEXT NOT NULL DEFAULT '',   -- what the security services found; '' = clean
    tls TEXT,                            -- TLS protocol of the session, if any
    message_id TEXT,
    subject TEXT,
    size INTEGER NOT NULL,               -- bytes, as stored (with our Received: header)
    body BLOB NOT NULL
) STRICT;

-- The delivery queue: one row per recipient and destination. Journal copies to the Threat
-- Defense intake are rows too, under the queue name 'the.tdc.queue'.
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    mid INTEGER NOT NULL REFERENCES messages(mid),
    rcpt_idx INTEGER NOT NULL,           -- RID: recipient index in the message
    recipient TEXT NOT NULL,
    queue_name TEXT NOT NULL,            -- destination domain, or 'the.tdc.queue'
    kind TEXT NOT NULL DEFAULT 'deliver' CHECK (kind IN ('deliver', 'journal')),
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'delivered', 'bounced', 'expired', 'dropped', 'quarantined')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,         -- unix seconds
    next_attempt_at INTEGER NOT NULL,    -- unix seconds; moved forward before each attempt
    lease_until INTEGER NOT NULL DEFAULT 0, -- unix seconds; a worker's claim, released by time
    last_reply TEXT,
    done_at INTEGER
) STRICT;
CREATE INDEX queue_due ON queue (state, next_attempt_at);
CREATE INDEX queue_mid ON queue (mid);

-- AsyncOS `tophosts` figures per recipient host (destination domain, or 'the.tdc.queue').
-- Active recipients are counted live from the queue; the rest is kept here, across restarts.
CREATE TABLE host_counters (
    host TEXT PRIMARY KEY,
    connections_out INTEGER NOT NULL DEFAULT 0, -- open delivery connections now
    delivered INTEGER NOT NULL DEFAULT 0,       -- recipients delivered
    soft_bounced INTEGER NOT NULL DEFAULT 0,    -- soft bounce events
    hard_bounced INTEGER NOT NULL DEFAULT 0,    -- recipients hard bounced (including expiry)
    down INTEGER NOT NULL DEFAULT 0,            -- 1 when the last connection attempt failed
    last_attempt_at INTEGER
) STRICT;

-- Message tracking: what happened to each MID, in order.
CREATE TABLE tracking (
    id INTEGER PRIMARY KEY,
    mid INTEGER NOT NULL,
    at INTEGER NOT NULL,                 -- unix milliseconds
    text TEXT NOT NULL
) STRICT;
CREATE INDEX tracking_mid ON tracking (mid);

-- Runtime settings, one JSON document per table (hat, rat, ...).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Bumped by every settings change, so that running appliances notice changes made by the CLI.
CREATE TABLE settings_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;
INSERT INTO settings_meta (id, generation) VALUES (1, 0);

-- Appliance accounts for the web UI, the REST API and the CLI.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,         -- argon2 PHC string
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'readonly')),
    created_at INTEGER NOT NULL
) STRICT;
