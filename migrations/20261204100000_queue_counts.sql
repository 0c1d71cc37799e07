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

-- The System Status activity chart, per minute: messages received (and of them spam and
-- infected) by the minute they arrived, queue rows by the minute they became final. The chart's
-- slots are whole minutes, so it sums at most a few hundred rows, whatever the traffic was.
CREATE TABLE activity_minutes (
    minute INTEGER NOT NULL,             -- unix seconds / 60
    kind TEXT NOT NULL,                  -- 'message', or the queue row's kind
    state TEXT NOT NULL,                 -- received | spam | virus, or the row's final state
    n INTEGER NOT NULL,
    PRIMARY KEY (minute, kind, state)
) STRICT, WITHOUT ROWID;

INSERT INTO activity_minutes (minute, kind, state, n)
    SELECT received_at / 60, 'message', 'received', COUNT(*) FROM messages GROUP BY 1;
INSERT INTO activity_minutes (minute, kind, state, n)
    SELECT received_at / 60, 'message', 'spam', COUNT(*) FROM messages
    WHERE spam IN ('positive', 'suspect') GROUP BY 1;
INSERT INTO activity_minutes (minute, kind, state, n)
    SELECT received_at / 60, 'message', 'virus', COUNT(*) FROM messages
    WHERE virus = 'positive' GROUP BY 1;
INSERT INTO activity_minutes (minute, kind, state, n)
    SELECT done_at / 60, kind, state, COUNT(*) FROM queue WHERE done_at IS NOT NULL GROUP BY 1, 2, 3;

CREATE TRIGGER activity_received AFTER INSERT ON messages
BEGIN
    INSERT INTO activity_minutes (minute, kind, state, n)
        VALUES (NEW.received_at / 60, 'message', 'received', 1)
        ON CONFLICT (minute, kind, state) DO UPDATE SET n = n + 1;
    INSERT INTO activity_minutes (minute, kind, state, n)
        SELECT NEW.received_at / 60, 'message', 'spam', 1
        WHERE COALESCE(NEW.spam, '') IN ('positive', 'suspect')
        ON CONFLICT (minute, kind, state) DO UPDATE SET n = n + 1;
    INSERT INTO activity_minutes (minute, kind, state, n)
        SELECT NEW.received_at / 60, 'message', 'virus', 1
        WHERE COALESCE(NEW.virus, '') = 'positive'
        ON CONFLICT (minute, kind, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER activity_done AFTER UPDATE OF state ON queue
WHEN NEW.done_at IS NOT NULL AND OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO activity_minutes (minute, kind, state, n)
        VALUES (NEW.done_at / 60, NEW.kind, NEW.state, 1)
        ON CONFLICT (minute, kind, state) DO UPDATE SET n = n + 1;
END;

-- The connector's ledger summaries ("last hour", "last day"): journal copies by the minute they
-- were queued and their ledger state now; a window starts at the beginning of its first minute.
CREATE TABLE journal_minutes (
    minute INTEGER NOT NULL,             -- created_at / 60
    state TEXT NOT NULL,
    replayed INTEGER NOT NULL,           -- 1 when replayed_at is set
    n INTEGER NOT NULL,
    PRIMARY KEY (minute, state, replayed)
) STRICT, WITHOUT ROWID;

INSERT INTO journal_minutes (minute, state, replayed, n)
    SELECT created_at / 60, state, replayed_at IS NOT NULL, COUNT(*) FROM queue
    WHERE kind = 'journal' GROUP BY 1, 2, 3;

CREATE TRIGGER journal_minutes_insert AFTER INSERT ON queue WHEN NEW.kind = 'journal'
BEGIN
    INSERT INTO journal_minutes (minute, state, replayed, n)
        VALUES (NEW.created_at / 60, NEW.state, NEW.replayed_at IS NOT NULL, 1)
        ON CONFLICT (minute, state, replayed) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER journal_minutes_update AFTER UPDATE OF state, replayed_at ON queue
WHEN NEW.kind = 'journal' AND (OLD.state IS NOT NEW.state
    OR (OLD.replayed_at IS NULL) IS NOT (NEW.replayed_at IS NULL))
BEGIN
    UPDATE journal_minutes SET n = n - 1
        WHERE minute = OLD.created_at / 60 AND state = OLD.state
        AND replayed = (OLD.replayed_at IS NOT NULL);
    INSERT INTO journal_minutes (minute, state, replayed, n)
        VALUES (NEW.created_at / 60, NEW.state, NEW.replayed_at IS NOT NULL, 1)
        ON CONFLICT (minute, state, replayed) DO UPDATE SET n = n + 1;
END;

-- Journal copies a replay would send again: failures are few, so this index stays small and the
-- connector page's "replayable" count does not walk every journal row.
CREATE INDEX queue_replayable ON queue (mid, created_at)
    WHERE kind = 'journal' AND state IN ('bounced', 'expired', 'dropped') AND replayed_at IS NULL;
