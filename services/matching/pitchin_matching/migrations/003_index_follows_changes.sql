-- Every matching process keeps an in-memory donor index; each consumes only some partitions,
-- so each follows the tables instead: a row that changes what the index holds for a donor
-- (the donor's profile, an offer to them, an assignment of theirs) records the transaction
-- that wrote it, and every process re-reads the donors whose rows a transaction it has not
-- yet seen wrote (pitchin_matching/follow.py says why a transaction id and not a sequence).
-- Storage sets the column in its own statements (INSERT takes the default, UPDATE sets it):
-- no trigger, no NOTIFY.
-- Existing rows get 0 (no table rewrite): the index loads them at start anyway.
ALTER TABLE donors ADD COLUMN changed_by xid8 NOT NULL DEFAULT '0';
ALTER TABLE donors ALTER COLUMN changed_by SET DEFAULT pg_current_xact_id();
ALTER TABLE offers ADD COLUMN changed_by xid8 NOT NULL DEFAULT '0';
ALTER TABLE offers ALTER COLUMN changed_by SET DEFAULT pg_current_xact_id();
ALTER TABLE assignments ADD COLUMN changed_by xid8 NOT NULL DEFAULT '0';
ALTER TABLE assignments ALTER COLUMN changed_by SET DEFAULT pg_current_xact_id();
CREATE INDEX donors_by_change ON donors (changed_by);
CREATE INDEX offers_by_change ON offers (changed_by);
CREATE INDEX assignments_by_change ON assignments (changed_by);
