-- Journal replay (issue 16): a journal copy that failed or expired and was queued again gets the
-- time of its replay; the ledger then shows it as `replayed`, and it is never replayed twice.
ALTER TABLE queue ADD COLUMN replayed_at INTEGER;
