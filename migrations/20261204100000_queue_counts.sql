-- Counters that the admin pages read instead of counting the queue (issue 18: with a million
-- queued rows, every count was a scan of the queue or, for the scanning verdicts, of every
-- message body). Triggers keep them in the same statement as the change, so they cannot drift
-- from the rows, whichever code path inserts or updates a row.

-- Queue rows per destination, kind and state: active recipients per host (tophosts, Delivery
-- Status) are the 'queued' rows; System Status sums the rest. Rows are never deleted (retention
-- prunes bodies only), so a finished state's count is cumulative.
CREATE TABLE queue_counts (
    queue_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (queue_name, kind, state)
) STRICT, WITHOUT ROWID;

INSERT INTO queue_counts (queue_name, kind, state, n)
    SELECT queue_name, kind, state, COUNT(*) FROM queue GROUP BY queue_name, kind, state;

CREATE TRIGGER queue_counts_insert AFTER INSERT ON queue
BEGIN
    INSERT INTO queue_counts (queue_name, kind, state, n)
        VALUES (NEW.queue_name, NEW.kind, NEW.state, 1)
        ON CONFLICT (queue_name, kind, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER queue_counts_update AFTER UPDATE OF state, queue_name, kind ON queue
WHEN OLD.state IS NOT NEW.state OR OLD.queue_name IS NOT NEW.queue_name OR OLD.kind IS NOT NEW.kind
BEGIN
    UPDATE queue_counts SET n = n - 1
        WHERE queue_name = OLD.queue_name AND kind = OLD.kind AND state = OLD.state;
    INSERT INTO queue_counts (queue_name, kind, state, n)
        VALUES (NEW.queue_name, NEW.kind, NEW.state, 1)
        ON CONFLICT (queue_name, kind, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER queue_counts_delete AFTER DELETE ON queue
BEGIN
    UPDATE queue_counts SET n = n - 1
        WHERE queue_name = OLD.queue_name AND kind = OLD.kind AND state = OLD.state;
END;

-- Messages received, and of them spam (positive or suspect) and infected.
CREATE TABLE message_counts (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    received INTEGER NOT NULL,
    spam INTEGER NOT NULL,
    virus INTEGER NOT NULL
) STRICT;

INSERT INTO message_counts (id, received, spam, virus)
    SELECT 1, COUNT(*), COALESCE(SUM(COALESCE(spam, '') IN ('positive', 'suspect')), 0),
           COALESCE(SUM(COALESCE(virus, '') = 'positive'), 0)
    FROM messages;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
BEGIN
    UPDATE message_counts SET received = received + 1,
        spam = spam + (COALESCE(NEW.spam, '') IN ('positive', 'suspect')),
        virus = virus + (COALESCE(NEW.virus, '') = 'positive')
        WHERE id = 1;
END;

-- The activity chart's ranges, answered from the index alone: the verdict columns were added
-- after the body, so reading them from the table means reading every body's overflow pages.
CREATE INDEX messages_received ON messages (received_at, spam, virus);
CREATE INDEX queue_done ON queue (done_at, kind, state) WHERE done_at IS NOT NULL;

-- The connector's ledger: journal copies by age.
CREATE INDEX queue_journal ON queue (created_at, state, replayed_at) WHERE kind = 'journal';

-- Journal copies a replay would send again: failures are few, so this index stays small and the
-- connector page's "replayable" count does not walk every journal row.
CREATE INDEX queue_replayable ON queue (mid, created_at)
    WHERE kind = 'journal' AND state IN ('bounced', 'expired', 'dropped') AND replayed_at IS NULL;
