-- What each source published lately (the staff's list of publishers: events in the last 24
-- hours, when last seen), read from the index alone.
CREATE INDEX ingest_seen_by_source_time ON ingest_seen (source, seen_at) INCLUDE (outcome);
