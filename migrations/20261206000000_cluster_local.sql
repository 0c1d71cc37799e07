-- Cluster mode: the accounts' generation of the cluster database that this node's copy of the
-- accounts is at (the settings' is `generation`). Unused on a single node.
ALTER TABLE settings_meta ADD COLUMN users_generation INTEGER NOT NULL DEFAULT 0;
