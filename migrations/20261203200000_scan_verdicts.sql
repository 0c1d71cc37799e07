-- What the anti-spam and anti-virus engines said about each message (SPEC §3a), for the
-- System Status counters and the activity chart: NULL when the service did not run.
-- spam: positive | suspect | negative | unscannable; virus: positive | negative | unscannable.
ALTER TABLE messages ADD COLUMN spam TEXT;
ALTER TABLE messages ADD COLUMN virus TEXT;
