-- Alerts (issue 20, System Administration > Alerts): every alert sent, newest last; kept 90 days
-- (Store::prune_alerts).
CREATE TABLE alert_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,                 -- unix seconds
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    key TEXT NOT NULL,                   -- the condition, e.g. host_down:example.com
    subject TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_to TEXT NOT NULL                -- where it went: addresses and/or the webhook, or why not
) STRICT;
CREATE INDEX alert_log_at ON alert_log (at);
