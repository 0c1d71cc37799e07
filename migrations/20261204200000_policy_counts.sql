-- Messages (MIDs, one per policy split) per mail policy, direction and verdict, for
-- GET /metrics (issue 20). Kept by a trigger like message_counts: a scrape reads a few rows
-- instead of counting the messages.
CREATE TABLE policy_counts (
    policy TEXT NOT NULL,
    relayed INTEGER NOT NULL,            -- 1: outgoing (RELAY), 0: incoming
    verdict TEXT NOT NULL,               -- deliver | drop | bounce | quarantine
    n INTEGER NOT NULL,
    PRIMARY KEY (policy, relayed, verdict)
) STRICT, WITHOUT ROWID;

INSERT INTO policy_counts (policy, relayed, verdict, n)
    SELECT policy, relayed, verdict, COUNT(*) FROM messages GROUP BY policy, relayed, verdict;

CREATE TRIGGER policy_counts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO policy_counts (policy, relayed, verdict, n)
        VALUES (NEW.policy, NEW.relayed, NEW.verdict, 1)
        ON CONFLICT (policy, relayed, verdict) DO UPDATE SET n = n + 1;
END;
