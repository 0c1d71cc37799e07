-- Cluster mode: each node's message tracking, shipped from its own store in batches (see
-- crates/store/src/shipping.rs), so that Message Tracking can search the whole cluster. A node
-- ships what it committed after a cursor it keeps locally; an outage of this database only
-- delays the central view.

-- One row per message and node (MIDs are unique per node only), replaced as it changes.
CREATE TABLE tracked_messages (
    node TEXT NOT NULL,
    mid BIGINT NOT NULL,
    received_at BIGINT NOT NULL,         -- unix seconds
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,            -- one per line
    subject TEXT,
    message_id TEXT,
    remote_ip TEXT NOT NULL,
    policy TEXT NOT NULL,
    events TEXT[] NOT NULL,              -- what happened to it so far: delivered, queued, …
    PRIMARY KEY (node, mid)
);
CREATE INDEX tracked_messages_received ON tracked_messages (received_at);

CREATE TABLE tracked_events (
    node TEXT NOT NULL,
    id BIGINT NOT NULL,                  -- the event's id in the node's store
    mid BIGINT NOT NULL,
    at BIGINT NOT NULL,                  -- unix milliseconds
    text TEXT NOT NULL,
    PRIMARY KEY (node, id)
);
CREATE INDEX tracked_events_mid ON tracked_events (node, mid);

-- How far behind each node's shipping is, with its heartbeat.
ALTER TABLE nodes ADD COLUMN outbox BIGINT NOT NULL DEFAULT 0;

-- Each node's System Status counters and its busiest `tophosts` rows, with its heartbeat, for
-- the cluster's totals: {"totals": {...}, "hosts": [...]}.
ALTER TABLE nodes ADD COLUMN stats TEXT NOT NULL DEFAULT '{}';

-- Each node's journal ledger (its journal copies and what became of them), shipped with the
-- tracking of the same messages.
CREATE TABLE tracked_ledger (
    node TEXT NOT NULL,
    row_id BIGINT NOT NULL,              -- the journal row's id in the node's queue
    mid BIGINT NOT NULL,
    intake TEXT NOT NULL,
    state TEXT NOT NULL,                 -- queued | delivered | failed | expired | replayed
    attempts BIGINT NOT NULL,
    last_reply TEXT,
    tls TEXT,
    queued_at BIGINT NOT NULL,           -- unix seconds
    done_at BIGINT,
    PRIMARY KEY (node, row_id)
);
CREATE INDEX tracked_ledger_queued ON tracked_ledger (queued_at);
