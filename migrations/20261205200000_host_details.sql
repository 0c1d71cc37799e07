-- Delivery Status details (issue 20, AsyncOS `hoststatus`): the last error, last delivery and
-- next retry per destination, the.tdc.queue per intake address, and destinations on hold
-- (AsyncOS `suspenddel`).

-- Written with the counters by each batch of delivery attempts (queue.rs).
ALTER TABLE host_counters ADD COLUMN last_error TEXT;
ALTER TABLE host_counters ADD COLUMN last_error_at INTEGER;
ALTER TABLE host_counters ADD COLUMN last_delivered_at INTEGER;
-- When the last deferred recipient is tried again; NULL once a delivery succeeded after it.
ALTER TABLE host_counters ADD COLUMN next_retry_at INTEGER;

-- Journal copies per intake address and state, so that one failing custom intake address does not
-- make the whole connector look down. Cumulative like `tophosts`: retention's deletions do not
-- lower them.
CREATE TABLE intake_counts (
    intake TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (intake, state)
) STRICT, WITHOUT ROWID;

INSERT INTO intake_counts (intake, state, n)
    SELECT recipient, state, COUNT(*) FROM queue WHERE kind = 'journal' GROUP BY 1, 2;

CREATE TRIGGER intake_counts_insert AFTER INSERT ON queue WHEN NEW.kind = 'journal'
BEGIN
    INSERT INTO intake_counts (intake, state, n) VALUES (NEW.recipient, NEW.state, 1)
        ON CONFLICT (intake, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER intake_counts_update AFTER UPDATE OF state ON queue
WHEN NEW.kind = 'journal' AND OLD.state IS NOT NEW.state
BEGIN
    UPDATE intake_counts SET n = n - 1 WHERE intake = OLD.recipient AND state = OLD.state;
    INSERT INTO intake_counts (intake, state, n) VALUES (NEW.recipient, NEW.state, 1)
        ON CONFLICT (intake, state) DO UPDATE SET n = n + 1;
END;

-- The last answer per intake address: every attempt writes last_reply.
CREATE TABLE intake_status (
    intake TEXT PRIMARY KEY,
    last_error TEXT,
    last_error_at INTEGER,
    last_delivered_at INTEGER,
    next_retry_at INTEGER
) STRICT;

CREATE TRIGGER intake_status_attempt AFTER UPDATE OF last_reply ON queue
WHEN NEW.kind = 'journal' AND NEW.last_reply IS NOT NULL
BEGIN
    INSERT INTO intake_status (intake, last_error, last_error_at, last_delivered_at, next_retry_at)
        VALUES (NEW.recipient,
                CASE WHEN NEW.state != 'delivered' THEN NEW.last_reply END,
                CASE WHEN NEW.state != 'delivered' THEN unixepoch() END,
                CASE WHEN NEW.state = 'delivered' THEN unixepoch() END,
                CASE WHEN NEW.state = 'queued' THEN NEW.next_attempt_at END)
        ON CONFLICT (intake) DO UPDATE SET
            last_error = COALESCE(excluded.last_error, last_error),
            last_error_at = COALESCE(excluded.last_error_at, last_error_at),
            last_delivered_at = COALESCE(excluded.last_delivered_at, last_delivered_at),
            next_retry_at = excluded.next_retry_at;
END;

-- Destinations whose delivery is suspended: their queued rows wait (next attempt parked far in
-- the future) until delivery is resumed. Mail for them is still accepted and queued.
CREATE TABLE held_hosts (
    host TEXT PRIMARY KEY,
    held_at INTEGER NOT NULL,
    held_by TEXT NOT NULL
) STRICT;
