-- Reporting (issue 20, Monitor > Overview): rollups that keep a month of history cheap to read,
-- whatever the traffic was. Neither table refers to messages, so retention's pruning of old
-- records does not change the reports; each keeps 32 days (Store::compact_reports).

-- Counts per 5-minute slot and series. Message categories (in_clean, in_spam, in_virus,
-- in_filtered and the out_ ones) are added by the writer with the messages (reports.rs);
-- recipient and journal outcomes by the triggers below, in the statement that finishes a row.
CREATE TABLE report_counts (
    slot INTEGER NOT NULL,               -- unix seconds / 300
    series TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (slot, series)
) STRICT, WITHOUT ROWID;

-- Top lists: incoming senders by domain and IP, incoming recipients, threat categories. Rows
-- are per hour (span 3600); once an hour is over only its 100 biggest keys are kept and the rest
-- is summed under key '', and hours before yesterday are folded into days (span 86400), so a
-- flood of distinct senders costs rows for an hour, not for a month.
CREATE TABLE report_top (
    dimension TEXT NOT NULL,             -- sender_domain | sender_ip | recipient | threat
    start INTEGER NOT NULL,              -- unix seconds: the hour's or the day's start
    span INTEGER NOT NULL,               -- 3600 | 86400
    key TEXT NOT NULL,                   -- '' = all the other keys of that hour or day
    n INTEGER NOT NULL,
    PRIMARY KEY (dimension, start, span, key)
) STRICT, WITHOUT ROWID;

-- Recipient and journal outcomes when a row becomes final. Dropped and quarantined deliveries
-- are message verdicts, counted with the message's category.
CREATE TRIGGER report_done AFTER UPDATE OF state ON queue
WHEN NEW.done_at IS NOT NULL AND OLD.state IS NOT NEW.state
    AND (NEW.state IN ('delivered', 'bounced', 'expired')
         OR (NEW.kind = 'journal' AND NEW.state = 'dropped'))
BEGIN
    INSERT INTO report_counts (slot, series, n)
        VALUES (NEW.done_at / 300,
                CASE WHEN NEW.kind = 'journal' THEN
                    CASE NEW.state WHEN 'delivered' THEN 'journal_delivered'
                                   WHEN 'expired' THEN 'journal_expired'
                                   ELSE 'journal_failed' END
                ELSE NEW.state END,
                1)
        ON CONFLICT (slot, series) DO UPDATE SET n = n + 1;
END;

-- Rows that are final when inserted (a recipient bounced at once by a security service).
CREATE TRIGGER report_done_insert AFTER INSERT ON queue
WHEN NEW.done_at IS NOT NULL
    AND (NEW.state IN ('delivered', 'bounced', 'expired')
         OR (NEW.kind = 'journal' AND NEW.state = 'dropped'))
BEGIN
    INSERT INTO report_counts (slot, series, n)
        VALUES (NEW.done_at / 300,
                CASE WHEN NEW.kind = 'journal' THEN
                    CASE NEW.state WHEN 'delivered' THEN 'journal_delivered'
                                   WHEN 'expired' THEN 'journal_expired'
                                   ELSE 'journal_failed' END
                ELSE NEW.state END,
                1)
        ON CONFLICT (slot, series) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER report_replayed AFTER UPDATE OF replayed_at ON queue
WHEN OLD.replayed_at IS NULL AND NEW.replayed_at IS NOT NULL
BEGIN
    INSERT INTO report_counts (slot, series, n)
        VALUES (NEW.replayed_at / 300, 'journal_replayed', 1)
        ON CONFLICT (slot, series) DO UPDATE SET n = n + 1;
END;

-- The last 32 days of what is already stored, so the reports do not start empty after an
-- upgrade. Threat categories come from the scan verdicts only (content filter names are in the
-- free-text findings); from now on the writer records them all.
INSERT INTO report_counts (slot, series, n)
    SELECT received_at / 300,
           CASE WHEN relayed THEN 'out_' ELSE 'in_' END ||
           CASE WHEN virus = 'positive' THEN 'virus'
                WHEN spam IN ('positive', 'suspect') THEN 'spam'
                WHEN verdict != 'deliver' OR findings != '' THEN 'filtered'
                ELSE 'clean' END,
           COUNT(*)
    FROM messages
    WHERE icid != 0 AND received_at >= unixepoch() - 32 * 86400
    GROUP BY 1, 2;
INSERT INTO report_counts (slot, series, n)
    SELECT done_at / 300,
           CASE WHEN kind = 'journal' THEN
               CASE state WHEN 'delivered' THEN 'journal_delivered'
                          WHEN 'expired' THEN 'journal_expired'
                          ELSE 'journal_failed' END
           ELSE state END,
           COUNT(*)
    FROM queue
    WHERE done_at >= unixepoch() - 32 * 86400
        AND (state IN ('delivered', 'bounced', 'expired') OR (kind = 'journal' AND state = 'dropped'))
    GROUP BY 1, 2
    ON CONFLICT (slot, series) DO UPDATE SET n = n + excluded.n;
INSERT INTO report_counts (slot, series, n)
    SELECT replayed_at / 300, 'journal_replayed', COUNT(*) FROM queue
    WHERE replayed_at >= unixepoch() - 32 * 86400
    GROUP BY 1
    ON CONFLICT (slot, series) DO UPDATE SET n = n + excluded.n;

INSERT INTO report_top (dimension, start, span, key, n)
    SELECT 'sender_domain', received_at / 3600 * 3600, 3600,
           CASE WHEN sender = '' THEN '<>'
                ELSE lower(substr(sender, instr(sender, '@') + 1)) END,
           COUNT(*)
    FROM messages
    WHERE icid != 0 AND NOT relayed AND received_at >= unixepoch() - 32 * 86400
    GROUP BY 2, 4;
INSERT INTO report_top (dimension, start, span, key, n)
    SELECT 'sender_ip', received_at / 3600 * 3600, 3600, remote_ip, COUNT(*)
    FROM messages
    WHERE icid != 0 AND NOT relayed AND received_at >= unixepoch() - 32 * 86400
    GROUP BY 2, 4;
INSERT INTO report_top (dimension, start, span, key, n)
    SELECT 'recipient', m.received_at / 3600 * 3600, 3600, lower(q.recipient), COUNT(*)
    FROM queue q JOIN messages m ON m.mid = q.mid
    WHERE q.kind = 'deliver' AND m.icid != 0 AND NOT m.relayed
        AND m.received_at >= unixepoch() - 32 * 86400
    GROUP BY 2, 4;
INSERT INTO report_top (dimension, start, span, key, n)
    SELECT 'threat', received_at / 3600 * 3600, 3600,
           CASE WHEN virus = 'positive' THEN 'Virus'
                WHEN spam = 'positive' THEN 'Spam'
                ELSE 'Suspected spam' END,
           COUNT(*)
    FROM messages
    WHERE icid != 0 AND (virus = 'positive' OR spam IN ('positive', 'suspect'))
        AND received_at >= unixepoch() - 32 * 86400
    GROUP BY 2, 4;
