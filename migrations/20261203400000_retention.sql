-- Retention (issue 16): the body of a finished message is emptied after
-- `retention.message_body_hours`, and the whole record goes after `retention.tracking_days`.
-- The index lets each pruning pass find old messages without reading the table.
ALTER TABLE messages ADD COLUMN body_pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_age ON messages (body_pruned, received_at);
