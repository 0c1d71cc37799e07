-- Large message bodies live in files of the spool directory beside the database
-- (`rampart.spool/`): written and synced by the accepting session before the group commit, so
-- the single writer no longer copies them into the WAL and again into the database. Such a row
-- keeps an empty `body` and `body_file = 1` (see crates/store/src/spool.rs).
ALTER TABLE messages ADD COLUMN body_file INTEGER NOT NULL DEFAULT 0;
-- Retention marks a body pruned, then removes its file, then clears `body_file`: the rows in
-- between (a handful, or those a crash left) are found through this index.
CREATE INDEX messages_spool_pruned ON messages (mid) WHERE body_file = 1 AND body_pruned = 1;
