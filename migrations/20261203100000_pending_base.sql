-- What each staged table looked like when the administrator first changed it: a commit is
-- refused when someone else committed a change to the same table meanwhile, instead of
-- overwriting it. NULL for changes staged before this column existed (not checked).
ALTER TABLE pending_tables ADD COLUMN base TEXT;
