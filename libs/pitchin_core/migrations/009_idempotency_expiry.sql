-- Idempotency answers are kept 24 hours (pitchin_core.idempotency.KEEP_ANSWERS); the
-- janitor finds the expired ones by age.
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);
